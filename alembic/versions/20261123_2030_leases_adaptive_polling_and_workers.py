"""leases, adaptive polling and workers

Feeds and digests get a lease (owner and expiry), so several workers sharing one
PostgreSQL database each claim a due feed or a pending digest alone, and a dead
worker's claims lapse. Feeds also keep their adaptive interval and ceiling, and
``workers`` lists the running daemons for ``monitor status``.

Revision ID: 4c507db520d4
Revises: 1a862592cfa3
Create Date: 2026-11-23 20:30:23.589266
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '4c507db520d4'
down_revision: str | None = '1a862592cfa3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('workers',
    sa.Column('id', sa.String(length=80), nullable=False),
    sa.Column('hostname', sa.Text(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workers'))
    )
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('poll_interval_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_interval_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_owner', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('last_changed_at')
        batch_op.drop_column('max_interval_seconds')
        batch_op.drop_column('poll_interval_seconds')

    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('lease_owner')

    op.drop_table('workers')
