"""When a feed is polled again: adaptive intervals, backoff, Retry-After, jitter (pure)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import PollSettings
from monitor.ingest import cadence

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLL = PollSettings(jitter=0.0, max_interval=3600, backoff_base=60, backoff_max=3600)


def test_a_quiet_feed_slows_down_to_the_ceiling_and_a_change_resets_it() -> None:
    current = None
    waits = []
    for _ in range(8):
        plan = cadence.after_success(600, 3600, current, changed=False)
        waits.append(plan.wait)
        current = plan.interval
    assert waits == [600, 900, 1350, 2025, 3038, 3600, 3600, 3600]
    assert cadence.after_success(600, 3600, current, changed=True).wait == 600
    # A ceiling equal to the interval turns adaptive polling off.
    assert cadence.after_success(600, 600, 600, changed=False).wait == 600
    # A lowered ceiling (config edit) applies at once; a raised floor too.
    assert cadence.after_success(600, 1200, 3600, changed=False).wait == 1200
    assert cadence.after_success(1800, 3600, 900, changed=False).wait == 1800


def test_failures_back_off_exponentially_up_to_the_cap_and_never_stop() -> None:
    waits = [cadence.after_failure(POLL, n, 900, None).wait for n in range(1, 10)]
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert cadence.after_failure(POLL, 10_000, 900, None).wait == 3600  # no overflow
    plan = cadence.after_failure(POLL, 3, 1350, None)
    assert plan.interval == 1350 and plan.reason == "backoff"  # the adaptive state is kept


def test_retry_after_is_honoured_when_it_asks_for_more_than_the_backoff() -> None:
    assert cadence.after_failure(POLL, 1, None, 7200).wait == 7200
    assert cadence.after_failure(POLL, 1, None, 7200).reason == "retry-after"
    assert cadence.after_failure(POLL, 3, None, 10).wait == 240  # the backoff is longer
    assert cadence.after_failure(POLL, 1, None, 10**9).wait == cadence.RETRY_AFTER_MAX_SECONDS


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0),
    (" 0 ", 0.0),
    ("Mon, 23 Nov 2026 12:30:00 GMT", 1800.0),  # IMF-fixdate
    ("Monday, 23-Nov-26 12:00:30 GMT", 30.0),  # RFC 850
    ("Mon Nov 23 13:00:00 2026", 3600.0),  # asctime
    ("Mon, 23 Nov 2026 11:00:00 GMT", 0.0),  # already past
    ("soon", None),
    ("-5", None),
    ("", None),
    (None, None),
])
def test_retry_after_header_forms(header: str | None, seconds: float | None) -> None:
    assert cadence.retry_after_seconds(header, NOW) == seconds


def test_jitter_stays_within_its_fraction_and_spreads_polls() -> None:
    rng = random.Random(7)
    plan = cadence.Plan(1000, 1000, "interval")
    times = [cadence.next_poll_at(NOW, plan, 0.1, rng) for _ in range(2000)]
    offsets = [(t - NOW).total_seconds() for t in times]
    assert min(offsets) >= 900 and max(offsets) <= 1100
    assert max(offsets) - min(offsets) > 150  # actually spread, not constant
    assert cadence.next_poll_at(NOW, plan, 0.0, rng) == NOW + timedelta(seconds=1000)
