"""digests that failed for good, and the alerts they gave back

A digest the SMTP server refuses for good (a refused recipient; a 5xx after
``[digest] give_up_after`` attempts) is marked failed instead of being retried for
ever, and gives its alerts to the recipient's next digest, once (``freed_alerts``).

Revision ID: a7b8c9d0e1f2
Revises: f6a7b8c9d0e1
Create Date: 2026-12-06 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a7b8c9d0e1f2'
down_revision: str | None = 'f6a7b8c9d0e1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('digests', sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'freed_alerts',
        sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=False),
        sa.Column('recipient', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], ondelete='CASCADE',
                                name=op.f('fk_freed_alerts_alert_id_alerts')),
        sa.PrimaryKeyConstraint('alert_id', 'recipient', name=op.f('pk_freed_alerts')))


def downgrade() -> None:
    op.drop_table('freed_alerts')
    with op.batch_alter_table('digests') as batch:
        batch.drop_column('failed_at')
