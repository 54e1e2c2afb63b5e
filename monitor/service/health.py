"""Whether a worker is healthy, for ``/healthz`` (pure): it is while it claims work
from a database that answers."""

from __future__ import annotations

from dataclasses import dataclass

# /healthz fails when the dispatcher has not reached the database for this long.
HEALTHY_WITHIN_SECONDS = 30.0


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: dict[str, object]


def health(worker: str, *, polls_in_flight: int, dispatch_age: float | None,
           db_problem: str | None, stopping: bool) -> Health:
    """``dispatch_age``: seconds since the dispatcher last reached the database (None:
    never yet); ``db_problem``: why its last try failed."""
    detail: dict[str, object] = {
        "worker": worker, "polls_in_flight": polls_in_flight,
        "last_dispatch_seconds_ago": None if dispatch_age is None else round(dispatch_age, 1)}
    if stopping:
        return Health(False, {**detail, "reason": "stopping"})
    if dispatch_age is None or dispatch_age > HEALTHY_WITHIN_SECONDS:
        reason = db_problem or "starting: no feeds claimed yet"
        return Health(False, {**detail, "reason": reason})
    return Health(True, detail)
