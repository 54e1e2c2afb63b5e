"""The daemon's Prometheus metrics, in a registry of its own (one per process).

Counters count what this process did since it started; gauges read the shared
database (:meth:`Metrics.observe`), so every worker reports the same backlog.
Served at ``/metrics`` by :mod:`monitor.web.app`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from monitor.pipeline.context import FeedReport
from monitor.store import Backlog, DigestCounts
from monitor.store.channels import ChannelCounts


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.polls = Counter("monitor_polls", "Feed polls finished, by outcome "
                             "(parsed, not_modified, unchanged, failed).", ["outcome"], registry=r)
        self.failures = Counter("monitor_poll_failures", "Failed feed polls, by kind (timeout, "
                                "network, http_4xx, http_5xx, rate_limited, too_large, redirect, "
                                "parse, store, error).", ["kind"], registry=r)
        self.items = Counter("monitor_items_stored", "Items stored: originals and duplicates.",
                             registry=r)
        self.duplicates = Counter("monitor_duplicates", "Items stored as duplicates of a seed "
                                  "or of an earlier item.", registry=r)
        self.alerts = Counter("monitor_alerts", "Alerts raised by rules.", registry=r)
        self.digests_sent = Counter("monitor_digests_sent", "Digests the SMTP server accepted.",
                                    registry=r)
        self.digest_failures = Counter("monitor_digest_failures", "Digest sends that failed "
                                       "(the digest stays pending and is retried, or, refused "
                                       "for good, fails).", registry=r)
        self.reloads = Counter("monitor_config_reloads", "Config reloads, by result (applied, "
                               "rejected).", ["result"], registry=r)
        self.poll_seconds = Histogram(
            "monitor_poll_duration_seconds", "Time to poll one feed, pages included.",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=r)
        self.backlog = Gauge("monitor_backlog_feeds", "Enabled feeds due and not being polled.",
                             registry=r)
        self.polling = Gauge("monitor_feeds_polling", "Enabled feeds being polled (under a live "
                             "lease), by any worker.", registry=r)
        self.failing = Gauge("monitor_feeds_failing", "Enabled feeds whose last poll failed.",
                             registry=r)
        self.enabled = Gauge("monitor_feeds_enabled", "Enabled feeds.", registry=r)
        self.oldest_overdue = Gauge("monitor_oldest_overdue_seconds", "How late the most overdue "
                                    "enabled feed is (0 when none is overdue).", registry=r)
        self.entries = Gauge("monitor_entries_pending", "Entries found and not yet stored: "
                             "their page not yet tried (found), or waiting to be tried again "
                             "(retrying).", ["state"], registry=r)
        self.entries_claimed = Gauge("monitor_entries_claimed", "Entries found and not yet "
                                     "stored that a worker is working on (under a live "
                                     "lease), by any worker.", registry=r)
        self.pending_digests = Gauge("monitor_digests_pending", "Digests not yet accepted by "
                                     "the SMTP server.", registry=r)
        self.failed_digests = Gauge("monitor_digests_failed", "Digests the SMTP server refused "
                                    "for good (not tried again; see `monitor digest list "
                                    "--failed`).", registry=r)
        self.in_flight = Gauge("monitor_polls_in_flight", "Polls this worker is running.",
                               registry=r)
        self.channel_messages = Gauge(
            "monitor_channel_messages", "Alert channel messages by state: pending (not yet "
            "delivered), retrying (pending, failed at least once), dead (given up), and "
            "alerts waiting for a story's follow-up.", ["channel", "state"], registry=r)
        for outcome in ("parsed", "not_modified", "unchanged", "failed"):
            self.polls.labels(outcome)  # shown as 0 before the first one
        for result in ("applied", "rejected"):
            self.reloads.labels(result)

    def poll(self, report: FeedReport, seconds: float) -> None:
        self.polls.labels(report.outcome).inc()
        if report.outcome == "failed":
            self.failures.labels(report.kind or "error").inc()
        self.items.inc(report.new + report.duplicates)
        self.duplicates.inc(report.duplicates)
        self.alerts.inc(report.alerts)
        self.poll_seconds.observe(seconds)

    def entries_worked(self, report: FeedReport) -> None:
        """What the entries this worker claimed outside its own polls gave."""
        self.items.inc(report.new + report.duplicates)
        self.duplicates.inc(report.duplicates)
        self.alerts.inc(report.alerts)

    def observe(self, backlog: Backlog, digests: DigestCounts,
                channels: dict[str, ChannelCounts] | None = None) -> None:
        self.backlog.set(backlog.due)
        self.polling.set(backlog.polling)
        self.failing.set(backlog.failing)
        self.enabled.set(backlog.enabled)
        self.oldest_overdue.set(backlog.oldest_overdue_seconds)
        self.entries.labels("found").set(backlog.entries_found)
        self.entries.labels("retrying").set(backlog.entries_retrying)
        self.entries_claimed.set(backlog.entries_claimed)
        self.pending_digests.set(digests.pending)
        self.failed_digests.set(digests.failed)
        for name, n in (channels or {}).items():
            for state in ("pending", "retrying", "dead", "waiting"):
                self.channel_messages.labels(name, state).set(getattr(n, state))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
