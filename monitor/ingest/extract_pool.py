"""Worker processes for the CPU-bound steps: feed parsing and article extraction.

trafilatura is not thread-safe, so extraction never runs on threads: it runs
in a :class:`concurrent.futures.ProcessPoolExecutor`. Workers reset
trafilatura's caches every few pages, and the pool is replaced after
``worker_max_tasks`` tasks per worker, so memory stays flat over months.

The pool is replaced whole rather than with the executor's ``max_tasks_per_child``:
on Python 3.11 that option deadlocks once a worker reaches its limit while work is
queued (the executor's feeder thread blocks on the call queue and no replacement
worker ever reads it; ``tests/test_workers.py`` shows the recycling here does not).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from monitor.errors import ExtractionError, FeedParseError
from monitor.ingest.articles import Article, extract_article, reset_caches
from monitor.ingest.feeds import ParsedFeed, parse_feed

log = logging.getLogger(__name__)

_RESET_EVERY = 25
_done_in_this_worker = 0


def _extract_task(html: bytes, url: str) -> Article:
    global _done_in_this_worker
    try:
        return extract_article(html, url)
    finally:
        _done_in_this_worker += 1
        if _done_in_this_worker % _RESET_EVERY == 0:
            reset_caches()


def _exit_with_parent() -> None:
    """In a worker: exit when the parent process is gone. A parent killed outright
    (``kill -9``, the OOM killer) never shuts its pool down, and its workers would
    otherwise wait for work forever."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of the spawn pipe closes
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class Processor:
    """Runs parsing and extraction off the event loop, in worker processes.

    The pool starts on first use, so a poll where every feed answers 304
    never pays for it.
    """

    def __init__(self, workers: int = 0, max_tasks_per_worker: int = 2000) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_tasks = max_tasks_per_worker
        self._pool: ProcessPoolExecutor | None = None
        self._submitted = 0  # tasks given to the current pool
        self.pools_started = 0

    def _executor(self) -> ProcessPoolExecutor:
        """The pool for the next task: a new one once the current pool has been given
        ``workers * max_tasks`` tasks. The old pool finishes what it holds, then its
        workers exit; a new worker's start-up (about a second of CPU) overlaps that."""
        if self._pool is not None and self._submitted >= self.workers * self.max_tasks:
            log.debug("replacing the worker processes after %d tasks", self._submitted)
            self._pool.shutdown(wait=False)
            self._pool = None
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                # spawn: a forked child would inherit the parent's sockets and DB connections.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
            )
            self._submitted = 0
            self.pools_started += 1
        self._submitted += 1
        return self._pool

    def _broken(self) -> None:
        log.error("a worker process died; starting a new pool")
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    async def parse_feed(self, body: bytes, url: str, content_type: str | None) -> ParsedFeed:
        """:func:`monitor.ingest.feeds.parse_feed` in a worker. Raises FeedParseError."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), parse_feed, body, url, content_type)
        except BrokenProcessPool as exc:
            self._broken()
            raise FeedParseError(url, "parser process died") from exc

    async def extract(self, html: bytes, url: str) -> Article:
        """:func:`monitor.ingest.articles.extract_article` in a worker. Raises ExtractionError."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), _extract_task, html, url)
        except BrokenProcessPool as exc:
            self._broken()
            raise ExtractionError(url, "extraction process died") from exc

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
