"""What a poll needs from outside (all side effects passed in), the rules compiled for
matching, and what a poll reports."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor import store
from monitor.clock import Clock
from monitor.config import RuleSettings, Settings
from monitor.db import reason as db_reason
from monitor.dedup.index import Deduplicator
from monitor.errors import (
    StoreError,
)
from monitor.ingest.articles import Article
from monitor.ingest.extract_pool import Processor
from monitor.ingest.fetcher import Fetcher, FetchResult
from monitor.rules import Hit, Matcher
from monitor.stories.joining import Stories

log = logging.getLogger(__name__)



T = TypeVar("T")

# Pages fetched ahead of extraction, per worker process: enough that the workers never
# wait for the network or for a feed's storing transaction, few enough that memory does
# not grow with the backlog (each is up to [fetch] max_page_bytes, typically ~150 KB).
PAGES_AHEAD_PER_WORKER = 6
# Entries a worker holds claimed and not yet done (its polls' and its dispatcher's), per
# worker process: enough to keep its pages ahead of the workers, few enough that other
# workers find the rest of a big feed's entries unclaimed and share them.
CLAIM_PER_WORKER = 2 * PAGES_AHEAD_PER_WORKER
# Feeds whose poll found nothing new, recorded in one transaction (see Context.record_soon).
OUTCOMES_PER_TRANSACTION = 200


@dataclass(frozen=True)
class RuleBook:
    """The config's rules compiled for matching, with their ids in the database."""

    matcher: Matcher
    ids: Mapping[str, int]
    queries: Mapping[str, str]
    notify: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # rule: channels

    @classmethod
    def build(cls, rules: Sequence[RuleSettings], ids: Mapping[str, int], *,
              stored_only: bool = False) -> RuleBook:
        """Raises StoreError when a rule is not stored (the config was not synced), unless
        ``stored_only``: then such rules are left out (a worker whose config is older
        than the one the shared tables follow; see monitor.service.startup)."""
        missing = [r.name for r in rules if r.name not in ids]
        if missing and not stored_only:
            raise StoreError(f"rules {missing} are not in the database; start with "
                             "`monitor run`, which stores the config's rules")
        kept = [r for r in rules if r.name in ids]
        return cls(Matcher((r.name, r.parsed) for r in kept), dict(ids),
                   {r.name: r.query for r in kept}, {r.name: r.notify for r in kept})

    def alert(self, hit: Hit) -> store.NewAlert:
        """What to store for one rule matching an item."""
        return store.NewAlert(self.ids[hit.rule], self.queries[hit.rule], hit.terms, hit.snippet,
                              self.notify.get(hit.rule, ()))


@dataclass
class Context:
    """What a poll needs from outside: all side effects are passed in here."""

    settings: Settings
    sessions: sessionmaker[Session]
    fetcher: Fetcher
    processor: Processor
    clock: Clock
    dedup: Deduplicator
    rules: RuleBook
    owner: str  # this worker's identity: polls run under its leases
    rng: random.Random = field(default_factory=random.Random)  # jitter
    # Article fetches in flight, by canonical URL: when two entries (in one feed or in
    # feeds polled together) link to the same article, the page is fetched only once.
    pages: dict[str, asyncio.Future[PageResult]] = field(default_factory=dict)
    # Pages fetched and not yet extracted (see PAGES_AHEAD_PER_WORKER).
    page_slots: asyncio.Semaphore = field(init=False)
    # One thread runs every poll's reads and its storing transaction, in turn: the event
    # loop goes on fetching meanwhile, and a process never races itself for SQLite's lock.
    store_thread: ThreadPoolExecutor = field(init=False)
    # Which story each stored article joins; counts terms for the shared frequencies.
    stories: Stories = field(init=False)

    # Outcomes of polls that found nothing to store, recorded together (see record_soon).
    _outcomes: list[tuple[Callable[[Session], bool], asyncio.Future[bool]]] = field(
        init=False, default_factory=list)
    _recorder: asyncio.Task[None] | None = field(init=False, default=None)
    # Entries claimed (see monitor.store.claim_entries) and not yet done, and an event
    # set whenever one is done.
    entries_held: int = field(init=False, default=0)
    _entry_done: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.page_slots = asyncio.Semaphore(PAGES_AHEAD_PER_WORKER * self.processor.workers)
        self.store_thread = ThreadPoolExecutor(1, thread_name_prefix="store")
        self.stories = Stories(self.settings.stories)

    def entry_room(self) -> int:
        """How many more entries to claim now: none while more than half of
        CLAIM_PER_WORKER per worker process are held (claim in batches), else up to it."""
        bound = CLAIM_PER_WORKER * self.processor.workers
        return 0 if self.entries_held > bound // 2 else bound - self.entries_held

    def hold_entries(self, n: int) -> None:
        self.entries_held += n

    def entry_done(self) -> None:
        self.entries_held -= 1
        self._entry_done.set()

    async def wait_for_entry_room(self) -> None:
        """Until :meth:`entry_room` is not 0."""
        while not self.entry_room():
            self._entry_done.clear()
            await self._entry_done.wait()

    async def record_soon(self, record: Callable[[Session], bool]) -> bool:
        """Run ``record`` (one feed's outcome: an UPDATE) in a transaction shared with the
        other outcomes waiting meanwhile; returns its result. A group commit: the first
        outcome is written at once, and those arriving while it commits go together in
        the next transaction. Raises SQLAlchemyError when that transaction fails."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outcomes.append((record, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.get_running_loop().create_task(self._record_waiting())
        return await done

    async def _record_waiting(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes[:OUTCOMES_PER_TRANSACTION], \
                self._outcomes[OUTCOMES_PER_TRANSACTION:]

            def write(batch: list[tuple[Callable[[Session], bool], asyncio.Future[bool]]]
                      = batch) -> list[bool]:
                with self.sessions.begin() as s:
                    return [record(s) for record, _ in batch]

            try:
                results = await self.in_store_thread(write)
            except Exception as exc:  # every outcome of the batch failed with it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for (_, done), held in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(held)

    async def in_store_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (database work) in the store thread, with this task's context (the
        feed and URL on log records). A poll cancelled meanwhile does not stop ``fn``:
        a transaction runs to its commit or rollback."""
        run = contextvars.copy_context().run
        return await asyncio.get_running_loop().run_in_executor(self.store_thread, run, fn)

    def close(self) -> None:
        """Wait for the store thread's last transaction, then end it; write the term
        frequencies counted since the last flush (logged when the database refuses)."""
        self.store_thread.shutdown(wait=True)
        self.flush_frequencies(force=True)

    def flush_frequencies(self, *, force: bool = False) -> None:
        """Write the counted term frequencies when due (see Stories.flush); a failure is
        logged and the counts kept for the next flush. Store thread, or after it ended."""
        if not force and not self.stories.due():
            return
        try:
            self.stories.flush(self.sessions)
        except SQLAlchemyError as exc:
            log.error("storing term frequencies failed: %s; kept for the next try",
                      db_reason(exc))


@dataclass
class FeedReport:
    feed: str
    url: str
    outcome: str  # "parsed" | "not_modified" | "unchanged" | "failed"
    kind: str | None = None  # what failed: timeout, network, http, parse, store …
    next_poll_at: datetime | None = None
    entries: int = 0
    known: int = 0  # entries this feed had already (same GUID): skipped
    new: int = 0
    duplicates: int = 0
    alerts: int = 0
    pages_fetched: int = 0
    page_failures: int = 0
    waiting: int = 0  # entries whose page is to be tried again (see store.entries)
    skipped: int = 0  # entries that could not be stored (logged), the others were
    error: str | None = None
    recorded: bool = True  # False: the outcome could not be written (the database failed)



@dataclass(frozen=True)
class PageResult:
    page: FetchResult | None
    article: Article | None
    error: str | None
    fetched_at: datetime | None
    status: int | None  # HTTP status, also of a failed fetch when the server answered
    transient: bool = False  # the failure may pass: worth trying the page again
    retry_after: str | None = None  # what the server asked, with a 429 or 503
