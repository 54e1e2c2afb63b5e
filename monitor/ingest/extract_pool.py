"""Worker processes for the CPU-bound steps: feed parsing and article extraction.

trafilatura is not thread-safe, so extraction never runs on threads: it runs in a
pool of worker processes (pebble's ``ProcessPool``, started with ``spawn``). Each
task is bounded in time: one that runs past ``[extract] timeout`` (a page or feed
that sends the parser into a loop) has its worker killed and replaced, and fails
alone, as does a task whose worker dies (a crash, the OOM killer); the other
workers' tasks go on. Workers reset trafilatura's caches every few pages and are
replaced after ``worker_max_tasks`` tasks each, so memory stays flat over months.

pebble rather than :class:`concurrent.futures.ProcessPoolExecutor`: the executor can
neither stop one task (only the whole pool) nor tell which task a dead worker held,
so one hung page held its feed for ever and one crash failed every task in flight;
and its own ``max_tasks_per_child`` deadlocks on Python 3.11 once a worker reaches
its limit while work is queued (``tests/test_workers.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.context
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any, TypeVar

from monitor.errors import ExtractionError, FeedParseError
from monitor.ingest.articles import Article, extract_article, reset_caches
from monitor.ingest.feeds import ParsedFeed, parse_feed

if TYPE_CHECKING:  # the workers import this module: not the config, nor SQLAlchemy with it
    from pebble import ProcessPool

    from monitor.config import ExtractSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

_RESET_EVERY = 25
_done_in_this_worker = 0


def _extract_task(html: bytes, url: str, fast: bool) -> Article:
    global _done_in_this_worker
    try:
        return extract_article(html, url, fast=fast)
    finally:
        _done_in_this_worker += 1
        if _done_in_this_worker % _RESET_EVERY == 0:
            reset_caches()


_WARM_PAGE = (b"<html lang=en><head><title>Warm</title></head><body><article><h1>Warm</h1>"
              + b"<p>A paragraph long enough to be taken for an article's text.</p>" * 8
              + b"</article></body></html>")


def _warm_up() -> None:
    """Import trafilatura and fill its lazy tables, before the first page comes."""
    with contextlib.suppress(ExtractionError):
        extract_article(_WARM_PAGE, "http://warm.invalid/")


def _start_worker() -> None:
    """A worker's initializer: out of the daemon's process group, and gone with it."""
    # Ctrl-C in a terminal signals the whole foreground process group, and a signal
    # may be sent to a group (``kill -TERM -PGID``): the daemon alone is to get them,
    # and stop its workers itself once its polls are done. (pebble's worker ignores
    # SIGINT; SIGTERM is how the pool stops a worker, so it must stay.) Before this
    # runs, _SpawnProcess keeps SIGINT blocked.
    os.setpgid(0, 0)
    _exit_with_parent()


class _SpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that starts with SIGINT blocked (a signal mask is inherited
    across fork and exec): a Ctrl-C while it imports its modules would otherwise end
    it with a KeyboardInterrupt traceback, before it has left the terminal's process
    group. The thread starting it blocks SIGINT for the moment of the fork; Python
    delivers signals to its main thread, which is not this one."""

    def start(self) -> None:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SpawnProcess


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


class WorkerDied(Exception):
    """The worker process running a task ended before the task did."""


class Processor:
    """Runs parsing and extraction off the event loop, in worker processes.

    The pool starts on first use, so a poll where every feed answers 304 never pays
    for it. ``timeout`` bounds each task (seconds).
    """

    def __init__(self, workers: int = 0, max_tasks_per_worker: int = 2000,
                 timeout: float = 60.0, *, fast: bool = False) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_tasks = max_tasks_per_worker
        self.timeout = timeout
        self.fast = fast  # [extract] mode = "fast"
        self._pool: ProcessPool | None = None
        # When a task last ended (done, failed or timed out), for /healthz: monotonic.
        self.last_done: float | None = None

    @classmethod
    def of(cls, settings: ExtractSettings) -> Processor:
        """The processor ``[extract]`` describes."""
        return cls(settings.workers, settings.worker_max_tasks, settings.timeout,
                   fast=settings.mode == "fast")

    def _executor(self) -> ProcessPool:
        if self._pool is None:
            from pebble import ProcessPool  # not on the way to the first request

            # spawn: a forked child would inherit the parent's sockets and DB connections.
            self._pool = ProcessPool(max_workers=self.workers, max_tasks=self.max_tasks,
                                     initializer=_start_worker, context=_SpawnContext())
        return self._pool

    def start(self) -> None:
        """Start the workers now, rather than at the first task, with a warm-up task per
        worker (each idle worker takes one) that imports trafilatura: called at start-up
        when pages are waiting, so that they get ready while the daemon itself starts."""
        pool = self._executor()
        for _ in range(self.workers):
            pool.schedule(_warm_up, timeout=self.timeout)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker. Raises TimeoutError when it runs past the timeout
        (its worker is killed and replaced), WorkerDied when its worker died, and
        whatever ``fn`` raises."""
        from pebble import ProcessExpired

        future = self._executor().schedule(fn, args, timeout=self.timeout)
        try:
            return await asyncio.wrap_future(future)
        except ProcessExpired as exc:
            raise WorkerDied(f"the worker process died (exit code {exc.exitcode})") from exc
        except asyncio.CancelledError:
            future.cancel()  # type: ignore[no-untyped-call]  # queued: dropped; running: stopped
            raise
        except CancelledError as exc:  # pebble cancelled it: the pool was stopped
            raise WorkerDied("the worker pool was stopped") from exc
        finally:
            self.last_done = time.monotonic()

    async def parse_feed(self, body: bytes, url: str, content_type: str | None) -> ParsedFeed:
        """:func:`monitor.ingest.feeds.parse_feed` in a worker. Raises FeedParseError."""
        try:
            return await self.call(parse_feed, body, url, content_type)
        except TimeoutError as exc:
            raise FeedParseError(url, f"parsing took longer than {self.timeout:g}s; the "
                                      "parser was stopped") from exc
        except WorkerDied as exc:
            raise FeedParseError(url, f"parser process died: {exc}") from exc

    async def extract(self, html: bytes, url: str) -> Article:
        """:func:`monitor.ingest.articles.extract_article` in a worker. Raises
        ExtractionError."""
        try:
            return await self.call(_extract_task, html, url, self.fast)
        except TimeoutError as exc:
            raise ExtractionError(url, f"extraction took longer than {self.timeout:g}s; "
                                       "the extractor was stopped", transient=True) from exc
        except WorkerDied as exc:
            raise ExtractionError(url, f"extraction process died: {exc}",
                                  transient=True) from exc

    def close(self) -> None:
        """Stop the workers; tasks still queued or running are cancelled."""
        if self._pool is not None:
            self._pool.stop()  # type: ignore[no-untyped-call]
            self._pool.join()
            self._pool = None
