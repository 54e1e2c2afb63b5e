"""Seeds: the corpus known before any feed is polled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.models import Seed


def upsert_seed(
    session: Session, *, name: str, file_sha256: str, title: str | None, text: str,
    text_hash: str | None, source_url: str | None, published_at: datetime | None, now: datetime,
) -> tuple[str, int]:
    """Insert or refresh one seed. Returns ("added" | "updated" | "unchanged", its id)."""
    row = session.scalar(select(Seed).where(Seed.name == name))
    if row is not None and row.file_sha256 == file_sha256:
        return "unchanged", row.id
    if row is None:
        row = Seed(name=name)
        session.add(row)
        outcome = "added"
    else:
        outcome = "updated"
    row.file_sha256, row.title, row.text, row.text_hash = file_sha256, title, text, text_hash
    row.source_url, row.published_at, row.loaded_at = source_url, published_at, now
    session.flush()
    return outcome, row.id
