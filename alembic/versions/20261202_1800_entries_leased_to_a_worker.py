"""entries leased to the worker that works on them

An entry found in a feed is recorded in ``entries`` and claimed the way feeds are: a
lease (``lease_owner``, ``lease_until``) held while its page is fetched, extracted and
stored, renewed by the holder's heartbeat and given back when it stops. Any worker may
claim an entry that no live lease holds once it is due (``next_attempt_at``), so the
pages of one big feed are spread over every worker, and a page retry needs no poll of
its feed.

Revision ID: c3d4e5f6a7b8
Revises: b2c3d4e5f6a7
Create Date: 2026-12-02 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'c3d4e5f6a7b8'
down_revision: str | None = 'b2c3d4e5f6a7'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('entries') as batch:
        batch.add_column(sa.Column('lease_owner', sa.Text(), nullable=True))
        batch.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_entries_next_attempt_at'), 'entries', ['next_attempt_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_entries_next_attempt_at'), table_name='entries')
    with op.batch_alter_table('entries') as batch:
        batch.drop_column('lease_until')
        batch.drop_column('lease_owner')
