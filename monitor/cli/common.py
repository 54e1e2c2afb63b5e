"""What the commands share: exit codes, JSON output, opening a ready database."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import db, store
from monitor.config import Settings
from monitor.config.values import parse_duration
from monitor.errors import StoreError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_STORE, EXIT_SEEDS, EXIT_MAIL = 0, 1, 2, 3, 4, 5


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dump(obj: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, default=json_default) + "\n")


def ready_engine(settings: Settings) -> Engine:
    """An engine on a reachable database whose schema is current. Raises StoreError."""
    engine = db.make_engine(settings.database.url)
    db.check_connection(engine)
    try:
        current, head = db.current_revision(engine), db.head_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"{db.describe(engine)}: {exc}") from exc
    if current != head:
        raise StoreError(
            f"{db.describe(engine)}: schema is at {current or 'nothing'}, not {head}: "
            "run `monitor db upgrade` (or `monitor run`, which upgrades on start)",
            hint="")
    return engine


@contextmanager
def stored(settings: Settings, *, write: bool = False) -> Iterator[Session]:
    """A session on the ready database (see :func:`ready_engine`), inside a transaction
    when ``write``; the engine is disposed after. Database errors become StoreError."""
    with session_factory(settings) as sessions, sessions.begin() if write else sessions() as s:
        yield s


@contextmanager
def session_factory(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the ready database, for commands that need several transactions;
    the engine is disposed after. Database errors become StoreError."""
    engine = ready_engine(settings)
    try:
        yield db.session_factory(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"{db.describe(engine)}: {exc}") from exc
    finally:
        engine.dispose()


def since_arg(value: str | None, now: datetime, flag: str = "--since") -> datetime | None:
    """``--since`` (or ``flag``: ``--until``) as a point in time, that long before
    ``now``: None for no bound. Raises UsageError."""
    if value is None or value.strip().lower() == "all":
        return None
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def ref_json(ref: store.Ref | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    d: dict[str, Any] = {"kind": ref.kind, "id": ref.id, "url": ref.url}
    if ref.kind == "seed":
        d["seed"] = ref.seed
    return d


def ref_text(ref: store.Ref) -> str:
    return f"{ref.kind} {ref.seed or ref.id}"


def duration(seconds: float | None) -> str:
    """``5400`` -> ``"1h30m"``; ``45`` -> ``"45s"``."""
    if seconds is None:
        return "-"
    s = round(seconds)
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s")]
    text = "".join(f"{n}{unit}" for n, unit in parts if n)
    return text or "0s"


def at(when: datetime, *, seconds: bool = False) -> str:
    """A moment as every text output shows it: in UTC, and saying so
    (``2026-12-02 18:43 UTC``). A time stored or computed in another zone (a digest
    slot is in ``[digest] timezone``) is converted, not relabelled."""
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M{':%S' if seconds else ''}} UTC"


def ago(when: datetime | None, now: datetime) -> str:
    """``when`` relative to ``now``: "never", "in 4m", "2h ago" (and the UTC time)."""
    if when is None:
        return "never"
    delta = (when - now).total_seconds()
    rel = f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"
    return f"{rel} ({at(when, seconds=True)})"


def feed_named(session: Session, given: str, *, flag: str = "--feed") -> str:
    """The feed name ``given`` means: the name of the feed at that URL, else
    :func:`pick_name` among every feed's (forgotten ones too: their items name them).
    Raises UsageError."""
    feeds = store.list_feeds(session, forgotten=True)
    by_url = {f.url: f.name for f in feeds}
    return by_url.get(given) or pick_name(given, (f.name for f in feeds), flag=flag,
                                          what="feed")


def pick_name(given: str, known: Iterable[str], *, flag: str, what: str) -> str:
    """The one of ``known`` (names of rules, feeds, recipients) that ``given`` means:
    itself, else the one that matches it ignoring case. Raises UsageError naming the
    close matches (or, with none, what there is), so a typo is an error rather than an
    empty answer."""
    names = list(dict.fromkeys(known))
    if given in names:
        return given
    folded = [n for n in names if n.casefold() == given.casefold()]
    if len(folded) == 1:
        return folded[0]
    by_fold = {n.casefold(): n for n in names}
    close = [by_fold[c] for c in difflib.get_close_matches(given.casefold(), list(by_fold),
                                                              n=3, cutoff=0.8)]
    if folded or close:
        options = folded or close
        raise UsageError(f"{flag} {given!r}: no {what} has that name; did you mean "
                         f"{' or '.join(repr(n) for n in options)}?")
    listed = ", ".join(repr(n) for n in names[:10]) + (", …" if len(names) > 10 else "")
    raise UsageError(f"{flag} {given!r}: no {what} has that name"
                     + (f"; the {what}s are {listed}" if names else f"; there is no {what}"))
