"""All SQL lives here, one module per table group. Every function takes a Session;
the caller owns the transaction.

    feeds   config sync, poll schedule, fetch state
    entries entries found whose page is still to be fetched (or tried again)
    seeds   the seed corpus
    items   exact-dedup lookups, insertion, listing, "also reported by"
    near    the near-duplicate index (band keys) and its lookup
    rules   rules from the config and the alerts they raise
    digests digest emails: composed, pending, sent
    workers the running daemons and their heartbeats
    leases  renewing and releasing a worker's claims on feeds and digests

Results leave this package as plain frozen dataclasses, never as ORM objects,
so nothing outside touches a lazy load or a detached instance. Callers use
``from monitor import store`` and ``store.<name>``: every public name is here.
"""

from __future__ import annotations

from monitor.store.digests import (
    DigestRow,
    NewDigest,
    add_digest,
    claim_digests,
    digest_counts,
    digest_message,
    list_digests,
    mark_digest_failed,
    mark_digest_sent,
    next_digest_attempt_at,
    undelivered_alerts,
)
from monitor.store.entries import (
    WaitingEntry,
    claim_entries,
    forget_entries,
    next_entry_due_at,
    record_entries,
    release_entry_leases,
    schedule_entry_retries,
    wait_entry,
    waiting_entries,
)
from monitor.store.feeds import (
    Backlog,
    FeedRow,
    FeedState,
    Move,
    SyncResult,
    backlog,
    claim_feeds,
    feed_states,
    list_feeds,
    next_due_at,
    record_feed_failure,
    record_feed_success,
    sync_feeds,
)
from monitor.store.items import (
    Copy,
    ItemRow,
    Known,
    NewItem,
    Ref,
    add_item,
    also_reported_by,
    find_by_guid_elsewhere,
    find_by_text_hash,
    find_by_url,
    known_guids,
    list_items,
    lock_original,
    lock_story_keys,
    lookup_known,
    promote,
    rules_alerted,
)
from monitor.store.leases import (
    release_every_feed_lease,
    release_feed_leases,
    release_leases,
    renew_leases,
)
from monitor.store.near import (
    NearCandidate,
    add_item_bands,
    delete_meta,
    get_meta,
    indexable_items,
    lock_near_index,
    near_candidates,
    near_index_rebuild,
    replace_item_bands,
    replace_seed_bands,
    seed_texts,
    set_meta,
)
from monitor.store.rules import (
    AlertRow,
    MatchableItem,
    NewAlert,
    add_alerts,
    count_alerts,
    items_to_match,
    list_alerts,
    rule_ids,
    sync_rules,
)
from monitor.store.seeds import (
    upsert_seed,
)
from monitor.store.workers import (
    WorkerRow,
    heartbeat,
    list_workers,
    register_worker,
    worker_stopped,
)

__all__ = [
    "AlertRow",
    "Backlog",
    "Copy",
    "DigestRow",
    "FeedRow",
    "FeedState",
    "ItemRow",
    "Known",
    "MatchableItem",
    "Move",
    "NearCandidate",
    "NewAlert",
    "NewDigest",
    "NewItem",
    "Ref",
    "SyncResult",
    "WaitingEntry",
    "WorkerRow",
    "add_alerts",
    "add_digest",
    "add_item",
    "add_item_bands",
    "also_reported_by",
    "backlog",
    "claim_digests",
    "claim_entries",
    "claim_feeds",
    "count_alerts",
    "delete_meta",
    "digest_counts",
    "digest_message",
    "feed_states",
    "find_by_guid_elsewhere",
    "find_by_text_hash",
    "find_by_url",
    "forget_entries",
    "get_meta",
    "heartbeat",
    "indexable_items",
    "items_to_match",
    "known_guids",
    "list_alerts",
    "list_digests",
    "list_feeds",
    "list_items",
    "list_workers",
    "lock_near_index",
    "lock_original",
    "lock_story_keys",
    "lookup_known",
    "mark_digest_failed",
    "mark_digest_sent",
    "near_candidates",
    "near_index_rebuild",
    "next_digest_attempt_at",
    "next_due_at",
    "next_entry_due_at",
    "promote",
    "record_entries",
    "record_feed_failure",
    "record_feed_success",
    "register_worker",
    "release_entry_leases",
    "release_every_feed_lease",
    "release_feed_leases",
    "release_leases",
    "renew_leases",
    "replace_item_bands",
    "replace_seed_bands",
    "rule_ids",
    "rules_alerted",
    "schedule_entry_retries",
    "seed_texts",
    "set_meta",
    "sync_feeds",
    "sync_rules",
    "undelivered_alerts",
    "upsert_seed",
    "wait_entry",
    "waiting_entries",
    "worker_stopped",
]
