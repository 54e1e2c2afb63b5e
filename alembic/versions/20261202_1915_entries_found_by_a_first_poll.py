"""entries found by their feed's first poll

A feed's first parse finds what it already had (its backlog). With ``alert_backlog =
false`` on the feed, those entries do not alert; whichever worker stores one must know
it was found then, so the entry's row says so.

Revision ID: d4e5f6a7b8c9
Revises: c3d4e5f6a7b8
Create Date: 2026-12-02 19:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'd4e5f6a7b8c9'
down_revision: str | None = 'c3d4e5f6a7b8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('entries') as batch:
        batch.add_column(sa.Column('backlog', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('entries') as batch:
        batch.drop_column('backlog')
