"""When to poll a feed again (pure: no clock, no randomness of its own).

    success, new entries       -> wait the feed's interval (the floor) again
    success, nothing new       -> wait 1.5 x longer than last time, up to the ceiling
    failure number n           -> wait backoff_base x 2^(n-1), up to backoff_max;
                                  never given up
    429/503 with Retry-After   -> at least what the server asked (up to a day)

Every wait is then stretched or shrunk at random by up to ``[poll] jitter``, so
feeds added together drift apart instead of hitting their hosts in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from monitor.config import PollSettings

# An adaptive interval grows by this factor after each poll that found nothing new.
SLOWDOWN = 1.5
# Retry-After is honoured up to this; a server asking for more is asked again after it.
RETRY_AFTER_MAX_SECONDS = 86400


@dataclass(frozen=True)
class Plan:
    """The outcome of one poll, as far as the schedule cares."""

    wait: float  # seconds until the next poll, before jitter
    interval: int  # the adaptive interval to remember (unchanged by a failure)
    reason: str  # for the log: "interval", "quiet", "backoff", "retry-after"


def after_success(floor: int, ceiling: int, current: int | None, changed: bool) -> Plan:
    """A poll that worked. ``changed``: it found entries this feed had not had before."""
    ceiling = max(ceiling, floor)
    if changed or current is None:
        return Plan(floor, floor, "interval")
    interval = min(ceiling, max(floor, round(current * SLOWDOWN)))
    return Plan(interval, interval, "quiet" if interval > floor else "interval")


def after_failure(settings: PollSettings, failures: int, current: int | None,
                  retry_after: float | None) -> Plan:
    """The ``failures``-th failure in a row (1 for the first)."""
    backoff = min(settings.backoff_max,
                  settings.backoff_base * 2 ** min(max(failures, 1) - 1, 30))
    kept = current if current is not None else 0
    if retry_after is not None and retry_after > backoff:
        return Plan(min(retry_after, RETRY_AFTER_MAX_SECONDS), kept, "retry-after")
    return Plan(backoff, kept, "backoff")


def jittered(wait: float, jitter: float, rng: random.Random) -> float:
    """``wait`` stretched or shrunk by a random fraction of at most ``jitter``."""
    return wait * (1.0 + rng.uniform(-jitter, jitter)) if jitter > 0 else wait


def next_poll_at(now: datetime, plan: Plan, jitter: float, rng: random.Random) -> datetime:
    return now + timedelta(seconds=jittered(plan.wait, jitter, rng))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """The wait a ``Retry-After`` header asks for: delta-seconds or an HTTP date
    (RFC 9110 10.2.3). None when absent or unreadable; a date in the past is 0."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 850 / asctime forms carry no zone: they are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
