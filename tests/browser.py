"""Headless Chromium for the browser tests (test_web_browser.py) and ``make screenshots``
(tests/screenshots.py): Playwright's sync API driving Debian's ``chromium`` package.
Playwright's own browser downloads are never used (``playwright install`` cannot reach
the network here).

Without a Chromium binary, or without playwright, the browser tests are skipped with
the reason; but where CI is set and /usr/bin/chromium exists, a browser that fails to
start fails the tests (a broken browser must not pass silently)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Without the background-networking flags Chromium floods the closed network with
# update, sync and field-trial requests.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NO_CHROMIUM = ("no Chromium: install Debian's chromium package (make test does, where "
               "apt-get can), or set CHROMIUM to its path")


class Unavailable(Exception):
    """No browser to test with: the tests are skipped."""


class LaunchFailed(Exception):
    """A Chromium binary exists but would not start."""


def chromium_path() -> str | None:
    """The first of $CHROMIUM (a path or a command name), /usr/bin/chromium and
    /usr/bin/chromium-browser that exists."""
    wanted = os.environ.get("CHROMIUM", "").strip()
    found = []
    if wanted:
        found.append(wanted if "/" in wanted else (shutil.which(wanted) or ""))
    found += CANDIDATES
    for path in found:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


def must_work() -> bool:
    """Whether a Chromium that fails to start is an error rather than a skip."""
    return bool(os.environ.get("CI")) and Path(CANDIDATES[0]).exists()


@contextmanager
def launch() -> Iterator[Browser]:
    """A headless Chromium. Raises Unavailable (no playwright, no binary) or
    LaunchFailed (the binary would not start)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        raise Unavailable(f"playwright cannot be imported ({exc}): "
                          "pip install -e '.[dev]'") from exc
    path = chromium_path()
    if path is None:
        raise Unavailable(NO_CHROMIUM)
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=path, headless=True, args=ARGS,
                                        timeout=60_000)
        except Error as exc:
            raise LaunchFailed(f"{path} would not start: {exc.message.splitlines()[0]}") from exc
        try:
            yield browser
        finally:
            browser.close()


def browser_fixture() -> Iterator[Browser]:
    """For a pytest fixture (``yield from browser_fixture()``): the browser, or the
    test skipped (failed where a working browser is required)."""
    import pytest

    try:
        with launch() as browser:
            yield browser
            return
    except Unavailable as exc:
        reason = str(exc)
    except LaunchFailed as exc:
        if must_work():
            pytest.fail(f"CI is set and {CANDIDATES[0]} exists, but {exc}", pytrace=False)
        reason = str(exc)
    pytest.skip(reason)
