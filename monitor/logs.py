"""Logging: human-readable lines by default, one JSON object per line as an option.

Every record logged while a feed is being polled carries that feed's name and URL
(``feed``, ``url``): :func:`feed_context` sets them for the current asyncio task,
so the fetcher's and the pipeline's messages all name the feed. The JSON form
puts them in their own fields; the text form has them in the message already.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TextIO

_feed: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "monitor_feed", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
QUIET_LOGGERS = ("aiohttp", "trafilatura", "htmldate", "charset_normalizer",
                 "alembic", "apscheduler")


@contextmanager
def feed_context(name: str, url: str) -> Iterator[None]:
    """Within this block (and the tasks it starts), records name the feed and URL."""
    token = _feed.set((name, url))
    try:
        yield
    finally:
        _feed.reset(token)


class _FeedFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = _feed.get()
        if current is not None and not hasattr(record, "feed"):
            record.feed, record.url = current
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "feed", "url", "exc"}``, one per line."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("feed", "url"):
            value = getattr(record, key, None)
            if value is not None:
                obj[key] = value
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so that setting up again replaces it and leaves other handlers alone."""


def setup(level: str, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Log to ``stream`` (standard error) at ``level``, as ``text`` or ``json``."""
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(_FeedFilter())
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Handler)] + [handler]
    root.setLevel(level)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # A stranger's malformed request (a NUL in a header) is answered 400 by aiohttp's
    # server, which then logs it with a traceback at ERROR: anyone could fill the log.
    # Errors of the review page's own handlers are logged by monitor.web.app instead.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
