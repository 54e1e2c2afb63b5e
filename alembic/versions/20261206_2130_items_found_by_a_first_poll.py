"""items found by their feed's first poll

``entries.backlog`` is gone once an entry is stored; the item keeps it, so that `rules
test` can say an item did not alert because its feed's first poll found it.

Revision ID: f6a7b8c9d0e1
Revises: e5f6a7b8c9d0
Create Date: 2026-12-06 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f6a7b8c9d0e1'
down_revision: str | None = 'e5f6a7b8c9d0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, not a batch operation: on SQLite a batch would copy the whole
    # items table (and fail on the rows that reference it) for a column with a constant
    # default, which both databases add in place.
    op.add_column('items', sa.Column('backlog', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('items') as batch:
        batch.drop_column('backlog')
