"""Rules and the alerts they raise."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import RuleSettings
from monitor.models import Rule


def sync_rules(session: Session, rules: Sequence[RuleSettings], now: datetime) -> None:
    """Store the config's rules; rules gone from the config are kept but disabled."""
    rows = {r.name: r for r in session.scalars(select(Rule))}
    for rs in rules:
        row = rows.pop(rs.name, None)
        if row is None:
            session.add(Rule(name=rs.name, query=rs.query, recipients=list(rs.recipients),
                             enabled=True, updated_at=now))
        elif (row.query, row.recipients, row.enabled) != (rs.query, list(rs.recipients), True):
            row.query, row.recipients, row.enabled, row.updated_at = (
                rs.query, list(rs.recipients), True, now)
    for row in rows.values():
        if row.enabled:
            row.enabled, row.updated_at = False, now
    session.flush()
