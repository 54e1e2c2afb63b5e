"""feeds.fetch_url_checked_at: when the configured URL last confirmed a move

A permanent redirect no longer moves a feed for ever: the configured URL is asked
again daily (and after a failure), and the move is dropped when it no longer
redirects. Existing moves have no date, so the first poll after this upgrade
confirms them.

Revision ID: 7b1e2c9d0a31
Revises: 4c507db520d4
Create Date: 2026-12-02 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '7b1e2c9d0a31'
down_revision: str | None = '4c507db520d4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fetch_url_checked_at', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('fetch_url_checked_at')
