"""Folders the project keeps at its top level and the wheel ships inside the package:
``alembic/`` as ``monitor/migrations``, ``seeds/`` as ``monitor/seeds``. Found through
the package, never the working directory: inside it when installed from a wheel, beside
it in a checkout (a source tree, an editable install)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def folder(inside: str, top: str, *, holds: tuple[str, ...] = ()) -> Path | None:
    """``monitor/<inside>`` if it exists, else ``<checkout>/<top>``; only one holding every
    name in ``holds`` counts (site-packages/alembic, the library, is no checkout's
    alembic/). None when neither is there."""
    for where in (PACKAGE / inside, PACKAGE.parent / top):
        if where.is_dir() and all((where / name).exists() for name in holds):
            return where
    return None
