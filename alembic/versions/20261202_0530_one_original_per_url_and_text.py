"""one original per canonical URL and per text hash

Two workers storing one story at the same moment could both store it as new. The
pipeline now locks a story's keys while it decides; these partial unique indexes
make the database refuse a second original with the same canonical URL or text
hash as well. Originals stored twice before this revision are resolved first: the
earliest stays the original, the later ones become its duplicates (by "url" or
"exact"), and their own duplicates point at it.

Revision ID: 9c4d5e6f7a8b
Revises: 7b1e2c9d0a31
Create Date: 2026-12-02 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '9c4d5e6f7a8b'
down_revision: str | None = '7b1e2c9d0a31'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _resolve_twice_stored(column: str, method: str, similarity: float | None) -> None:
    conn = op.get_bind()
    groups = conn.execute(sa.text(
        f"SELECT {column}, min(id) FROM items WHERE status = 'new' AND {column} IS NOT NULL "
        f"GROUP BY {column} HAVING count(*) > 1")).all()
    for value, first in groups:
        later = [row[0] for row in conn.execute(sa.text(
            f"SELECT id FROM items WHERE status = 'new' AND {column} = :v AND id <> :first"),
            {"v": value, "first": first})]
        for item_id in later:
            conn.execute(sa.text(
                "UPDATE items SET duplicate_of_item_id = :first WHERE duplicate_of_item_id = :id"),
                {"first": first, "id": item_id})
            conn.execute(sa.text(
                "UPDATE items SET status = 'duplicate', duplicate_of_item_id = :first, "
                "dedup_method = :method, similarity = :sim WHERE id = :id"),
                {"first": first, "id": item_id, "method": method, "sim": similarity})


def upgrade() -> None:
    _resolve_twice_stored("canonical_url", "url", None)
    _resolve_twice_stored("text_hash", "exact", 1.0)
    where = sa.text("status = 'new'")
    op.create_index('uq_items_original_canonical_url', 'items', ['canonical_url'], unique=True,
                    sqlite_where=where, postgresql_where=where)
    op.create_index('uq_items_original_text_hash', 'items', ['text_hash'], unique=True,
                    sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index('uq_items_original_text_hash', table_name='items')
    op.drop_index('uq_items_original_canonical_url', table_name='items')
