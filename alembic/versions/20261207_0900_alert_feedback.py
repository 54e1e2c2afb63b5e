"""alert_feedback: a reviewer's verdict on an alert (relevant or not), who and when

Written by the review page and its API (monitor.web); counted in later digests and
exported by `alerts list --json`. One row per alert: a later verdict replaces it.

Revision ID: 7b1d2e9c4a60
Revises: 5e4c3b2a1f07
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7b1d2e9c4a60'
down_revision: str | None = '5e4c3b2a1f07'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'alert_feedback',
        sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=False),
        sa.Column('relevant', sa.Boolean(), nullable=False),
        sa.Column('by', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'],
                                name=op.f('fk_alert_feedback_alert_id_alerts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('alert_id', name=op.f('pk_alert_feedback')),
    )
    op.create_index(op.f('ix_alert_feedback_at'), 'alert_feedback', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_alert_feedback_at'), table_name='alert_feedback')
    op.drop_table('alert_feedback')
