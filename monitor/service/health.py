"""Whether a worker is healthy, for ``/healthz`` (pure). It is while the database
answers it (a claim, or the heartbeat that renews its leases) and its work in flight
moves: a worker whose polls all wait on slow servers is busy, not stuck, for as long
as no step could legitimately take that long (a request, a page's extraction)."""

from __future__ import annotations

from dataclasses import dataclass

# /healthz fails when the database has not answered for this long (at least: see
# ``db_within`` below, which grows with the heartbeat's interval).
HEALTHY_WITHIN_SECONDS = 30.0
# Beyond the longest step (a request's timeout plus a page's extraction timeout), how
# long work in flight may go without anything finishing before the worker counts as
# stuck.
STALL_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: dict[str, object]


@dataclass(frozen=True)
class Limits:
    """How long the database may stay silent and work in flight may go without
    progress, from the config."""

    db_within: float
    stall_after: float

    @classmethod
    def of(cls, *, heartbeat_seconds: float, fetch_timeout: float,
           extract_timeout: float) -> Limits:
        return cls(db_within=max(HEALTHY_WITHIN_SECONDS, 2 * heartbeat_seconds),
                   stall_after=fetch_timeout + extract_timeout + STALL_MARGIN_SECONDS)


def health(worker: str, *, polls_in_flight: int, entries_in_flight: int = 0,
           db_age: float | None, progress_age: float | None, db_problem: str | None,
           stopping: bool, limits: Limits) -> Health:
    """``db_age``: seconds since the database last answered this worker (None: never
    yet); ``progress_age``: since its work last moved (a request answered, a page
    extracted, a poll or an entry done, a claim made); ``db_problem``: why its last
    claim failed."""
    detail: dict[str, object] = {
        "worker": worker, "polls_in_flight": polls_in_flight,
        "entries_in_flight": entries_in_flight,
        "database_seconds_ago": None if db_age is None else round(db_age, 1),
        "progress_seconds_ago": None if progress_age is None else round(progress_age, 1)}
    if stopping:
        return Health(False, {**detail, "reason": "stopping"})
    if db_age is None:
        return Health(False, {**detail, "reason": db_problem or "starting: no feeds claimed yet"})
    if db_age > limits.db_within:
        return Health(False, {**detail, "reason": db_problem
                              or f"the database has not answered for {db_age:.0f}s"})
    busy = polls_in_flight or entries_in_flight
    if busy and progress_age is not None and progress_age > limits.stall_after:
        return Health(False, {**detail, "reason": (
            f"stuck: {polls_in_flight} polls and {entries_in_flight} entries in flight, "
            f"nothing has moved for {progress_age:.0f}s")})
    return Health(True, detail)
