"""Fetching stored items' pages again (``monitor items refetch``): after a fix to the
config (``[fetch] allow_private``, a timeout) or a site that was down, an item stored
from its feed's summary, or with a page error, gets its page's text.

Each item's page is fetched and extracted the way a poll does (the same guards, the same
extraction), then, in a transaction of its own, under its story's locks, its text is
decided again with the one dedup decision (its own copies left out): it stays or
becomes an original (and the rules are matched on its new text: a rule that alerted for
its story already does not again), it becomes a copy of another original (its copies
follow it there), or, a fuller copy of another original, it takes that story over. A
page that fails again changes nothing stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor import store
from monitor.dedup.decision import DecideAgain, Decision, decide, story_keys
from monitor.dedup.fingerprint import story_key
from monitor.ingest.feeds import FeedEntry
from monitor.ingest.urls import canonical_url
from monitor.pipeline.context import Context
from monitor.pipeline.entries import (
    Candidate,
    Prepared,
    alert,
    alerts_backlog,
    fetch_article,
    prepare,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refetched:
    """What fetching one item's page again did."""

    item_id: int
    feed: str
    url: str | None
    outcome: str  # "retexted" | "unchanged" | "failed" | "gone"
    error: str | None = None  # why the page failed
    source_before: str | None = None
    source_after: str | None = None
    chars_before: int = 0
    chars_after: int = 0
    status_before: str | None = None  # "new" | "duplicate"
    status_after: str | None = None
    duplicate_of: store.Ref | None = None  # after
    method: str | None = None
    took_over: int | None = None  # the original it replaced as a fuller copy
    matched: tuple[str, ...] = ()  # rules that matched its new text and had not alerted
    alerts: int = 0
    why_not: str | None = None  # why the rules that matched did not alert


async def refetch(ctx: Context, item_ids: Sequence[int]) -> list[Refetched]:
    """Fetch each item's page again and store what it changes; returns one report per
    item, in the order given. Raises what the database raises when it fails itself."""
    slots = asyncio.Semaphore(max(1, ctx.settings.fetch.concurrency))

    async def one(item_id: int) -> Refetched:
        async with slots:
            return await _refetch_one(ctx, item_id)

    return list(await asyncio.gather(*(one(i) for i in item_ids)))


async def _refetch_one(ctx: Context, item_id: int) -> Refetched:
    def read() -> tuple[store.StoredItem | None, store.FeedState | None]:
        with ctx.sessions() as s:
            item = store.stored_item(s, item_id)
            feed = store.feed_states(s, [item.feed_id]).get(item.feed_id) if item else None
        return item, feed

    item, feed = await ctx.in_store_thread(read)
    if item is None or feed is None:
        return Refetched(item_id, "", None, "gone")
    c = candidate(item)
    await fetch_article(ctx, feed, c)
    if c.page is None or c.page_error is not None:
        log.warning("feed %r: item %d <%s>: page fetched again failed: %s; nothing changed",
                    feed.name, item.id, item.url, c.page_error)
        return Refetched(item.id, feed.name, item.url, "failed", c.page_error or "no page",
                         item.text_source, item.text_source, len(item.text), len(item.text),
                         item.status, item.status, item.duplicate_of, item.dedup_method)
    return await ctx.in_store_thread(lambda: _store(ctx, feed, item, c))


def candidate(item: store.StoredItem) -> Candidate:
    """The item as a poll would have its entry: what the feed gave is the stored text
    when that is where the text came from."""
    entry = FeedEntry(item.guid, item.url, item.title, item.author, item.published_at,
                      item.text if item.text_source == "feed_content" else None,
                      item.text if item.text_source == "feed_summary" else None)
    return Candidate(entry, canonical_url(item.url) if item.url else None, item.language)


def _store(ctx: Context, feed: store.FeedState, item: store.StoredItem,
           c: Candidate) -> Refetched:
    """Store what the page fetched again changes, in a transaction of its own; decided
    again, once, when another worker's commit made it break a constraint or changed
    the item meanwhile."""
    assert c.page is not None
    p = prepare(ctx, feed, c)
    article = c.article
    page = store.PageFields(c.page.final_url, c.fetched_at, c.page_status)
    text = store.NewText(
        p.text, p.source, p.keys.text_hash, p.canonical,
        (article.language if p.source == "page" and article else None) or item.language,
        article.site_name if article else None)
    before = Refetched(item.id, feed.name, item.url, "unchanged",
                       source_before=item.text_source, chars_before=len(item.text),
                       status_before=item.status)
    for attempt in (1, 2):
        try:
            with ctx.sessions.begin() as s:
                return _decide_again(ctx, s, feed, c, p, page, text, before)
        except (IntegrityError, DecideAgain) as exc:
            if attempt == 2:
                raise
            log.info("feed %r: item %d <%s>: changed meanwhile by another worker (%s); "
                     "deciding again", feed.name, item.id, item.url, exc)
    raise AssertionError("unreachable")


def _decide_again(ctx: Context, s: Session, feed: store.FeedState, c: Candidate,
                  p: Prepared, page: store.PageFields, text: store.NewText,
                  before: Refetched) -> Refetched:
    current = store.stored_item(s, before.item_id)
    if current is None:
        return replace(before, outcome="gone")
    if (text.text, text.text_source, text.canonical_url) == (
            current.text, current.text_source, current.canonical_url):
        store.record_page(s, current.id, page)
        return replace(before, source_after=text.text_source, chars_after=len(text.text),
                       status_after=current.status, duplicate_of=current.duplicate_of,
                       method=current.dedup_method)
    # The story it was in and the one it may join are both held (one ascending
    # acquisition, before any row lock, as a poll storing an entry takes them), before
    # its band keys leave the index: its own copies must not be what it matches.
    old = [story_key(kind, value) for kind, value in (
        ("url", current.canonical_url), ("hash", current.text_hash)) if value]
    old += store.item_band_keys(s, current.id)
    fp = ctx.dedup.fingerprint(p.keys.norm) if p.keys.norm is not None else None
    store.lock_story_keys(s, [*old, *story_keys(p.keys, fp)])
    locked = store.stored_item(s, current.id, lock=True)
    if locked is None or (locked.text_hash, locked.canonical_url) != (
            current.text_hash, current.canonical_url):
        raise DecideAgain(f"item {current.id} was given another text meanwhile")
    store.drop_item_bands(s, locked.id)
    v = decide(s, ctx.dedup, p.keys, lock=lambda _keys: True, exclude=locked.id)
    return _apply(ctx, s, feed, locked, c, v, page, text, before)


def _apply(ctx: Context, s: Session, feed: store.FeedState, item: store.StoredItem,
           c: Candidate, v: Decision, page: store.PageFields, text: store.NewText,
           before: Refetched) -> Refetched:
    """Store the decision ``v`` on the new text of ``item``, in the caller's transaction.
    One original per canonical URL and per text: an item becoming a copy stops being an
    original before it takes its new text, one becoming an original after."""
    after = replace(before, outcome="retexted", source_after=text.text_source,
                    chars_after=len(text.text))
    if v.ref is not None:
        store.make_copy(s, item.id, v.ref, v.method or "near", v.similarity)
        story = store.story_of(s, v.ref)  # a copy reports what its original reports
        if story is not None:
            store.set_story(s, store.Ref("item", item.id, item.url), story)
        store.record_page(s, item.id, page, text)
        if v.fingerprint is not None:  # a near copy is indexed, an exact one adds nothing
            ctx.dedup.index_item(s, item.id, v.fingerprint)
        log.info("feed %r: item %d <%s>: fetched again, now a copy of %s %s (by %s)",
                 feed.name, item.id, item.url, v.ref.kind, v.ref.seed or v.ref.id, v.method)
        return replace(after, status_after="duplicate", duplicate_of=v.ref, method=v.method)
    store.record_page(s, item.id, page, text)
    if item.status != "new":
        store.make_original(s, item.id)
    if v.fingerprint is not None:
        ctx.dedup.index_item(s, item.id, v.fingerprint)
    if v.replaces is not None:
        assert v.near is not None
        store.promote(s, v.replaces.id, item.id, round(v.near.scores.similarity, 4))
    alerted = alert(ctx, s, feed, item.id, c.entry.title, text.text, item.published_at,
                    item.url, story_alerted=True,
                    backlog=item.backlog and not alerts_backlog(ctx, feed))
    log.info("feed %r: item %d <%s>: fetched again, an original%s; %d alerts", feed.name,
             item.id, item.url,
             f" taking over from item {v.replaces.id}" if v.replaces is not None else "",
             alerted.stored)
    return replace(after, status_after="new",
                   took_over=v.replaces.id if v.replaces else None,
                   matched=alerted.rules, alerts=alerted.stored, why_not=alerted.why_not)
