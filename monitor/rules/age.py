"""Whether a matched original alerts: recent enough (``[alerts] max_age``), and not
from a feed's first poll whose backlog is not to alert (``alert_backlog = false``).

A rule that matches an article published long ago (a new feed's backlog, an old page
that resurfaces in a feed) does not alert: the article is stored and can be searched,
but it is not news for a digest.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def too_old(published: datetime | None, now: datetime, max_age: int) -> str | None:
    """Why an article published at ``published`` does not alert at ``now`` (None: it
    does). An article with no date counts as published when it is first seen, now;
    ``max_age`` 0 sets no limit."""
    if not max_age or published is None:
        return None
    age = now - published
    if age <= timedelta(seconds=max_age):
        return None
    limit = _days(timedelta(seconds=max_age))
    return f"published {_days(age)} ago, longer than [alerts] max_age ({limit})"


def why_not(published: datetime | None, now: datetime, max_age: int, *,
            muted_backlog: bool = False) -> str | None:
    """Why a matched original does not alert (None: it does): ``muted_backlog``, it was
    found by its feed's first poll and the feed has ``alert_backlog = false``; else it
    is :func:`too_old`."""
    if muted_backlog:
        return "found by its feed's first poll (the feed has alert_backlog = false)"
    return too_old(published, now, max_age)


def _days(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400}d"
    if seconds >= 3600:
        return f"{seconds // 3600}h"
    return f"{max(seconds // 60, 0)}m"
