"""``monitor run --once``: claim every enabled feed, poll them all once, tell the rules'
channels what they alerted (one delivery round), return."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor import db, store
from monitor.clock import Clock
from monitor.config import Settings
from monitor.dedup.index import Deduplicator
from monitor.errors import StoreError
from monitor.identity import worker_id
from monitor.ingest.extract_pool import Processor
from monitor.ingest.fetcher import Fetcher
from monitor.pipeline.context import Context, FeedReport
from monitor.pipeline.poll import poll_feed
from monitor.service.channel_job import ChannelJob, Delivered
from monitor.service.claims import release, renew_forever
from monitor.service.startup import sync_config

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    reports: list[FeedReport] = field(default_factory=list)
    channels: Delivered = field(default_factory=Delivered)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.reports if r.outcome == outcome)

    def total(self, attr: str) -> int:
        return sum(int(getattr(r, attr)) for r in self.reports)

    def render(self) -> str:
        lines = [
            f"polled {len(self.reports)} feeds: {self.count('parsed')} parsed, "
            f"{self.count('not_modified')} not modified, {self.count('unchanged')} unchanged, "
            f"{self.count('failed')} failed",
            f"entries: {self.total('entries')} seen, {self.total('known')} already stored, "
            f"{self.total('new')} new, {self.total('duplicates')} duplicates, "
            f"{self.total('alerts')} alerts"
            + (f", {self.total('skipped')} could not be stored (see the log)"
               if self.total("skipped") else "") + "; "
            f"pages: {self.total('pages_fetched')} fetched, {self.total('page_failures')} failed"
            + (f"; {self.total('waiting')} entries wait to try their pages again"
               if self.total("waiting") else ""),
        ]
        if self.channels:
            lines.append(self.channels.render())
        lines += [f"  failed: {r.feed} <{r.url}>: {r.error}" for r in self.reports if r.error]
        return "\n".join(lines)


async def run_once(settings: Settings, engine: Engine, clock: Clock,
                   urls: Sequence[str] | None = None,
                   processor: Processor | None = None) -> RunSummary:
    """Poll every enabled feed that no running daemon holds (of them, those at ``urls``
    when given), once; returns what each poll did. ``processor``: the extraction pool
    to use (one started early), closed here; else one is made. Raises StoreError when
    the feeds cannot be claimed."""
    sessions = db.session_factory(engine)
    owner = worker_id("once")
    lease = timedelta(seconds=settings.daemon.lease)
    rules = sync_config(sessions, settings, clock()).rules
    now = clock()
    try:
        with sessions.begin() as s:
            feeds = store.claim_feeds(s, owner, now, now + lease, limit=1_000_000,
                                      everything=True, urls=urls)
    except SQLAlchemyError as exc:
        raise StoreError(f"claiming feeds failed: {db.reason(exc)}") from exc
    skipped = (len(settings.feeds) if urls is None else len(urls)) - len(feeds)
    if skipped > 0:
        log.info("%d feeds are disabled or being polled by a running daemon: not polled now",
                 skipped)
    processor = processor or Processor.of(settings.extract)
    renewing = asyncio.create_task(renew_forever(sessions, owner, settings, clock))
    try:
        async with Fetcher(settings.fetch) as fetcher:
            ctx = Context(settings, sessions, fetcher, processor, clock,
                          Deduplicator.from_settings(settings), rules, owner)
            try:
                results = await asyncio.gather(*(poll_feed(ctx, f) for f in feeds))
            finally:
                ctx.close()
            # What the polls alerted, and what earlier runs left to retry, once.
            delivered = await ChannelJob(sessions, settings, fetcher, clock, owner).run()
    finally:
        renewing.cancel()
        processor.close()
        release(sessions, owner)
    return RunSummary(list(results), delivered)
