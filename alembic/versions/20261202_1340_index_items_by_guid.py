"""index items by GUID alone

An entry whose GUID means the same article in any feed (a URL, a tag: or urn: URI)
is looked up among other feeds' items: ``guid = ? AND feed_id <> ?``. The unique
``(feed_id, guid)`` index cannot serve that (its first column is the feed), so every
lookup scanned the whole table; with each entry now looked up in its own storing
transaction, that cost grew with the table on every entry.

Revision ID: b2c3d4e5f6a7
Revises: a1d2e3f4b5c6
Create Date: 2026-12-02 13:40:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = 'b2c3d4e5f6a7'
down_revision: str | None = 'a1d2e3f4b5c6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f('ix_items_guid'), 'items', ['guid'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_items_guid'), table_name='items')
