"""create digests

A digest is one email to one recipient, stored whole (so a retry resends the
same bytes and Message-ID) and pending until ``sent_at``; ``digest_alerts``
says which alerts it carries, unique per alert and recipient.

Revision ID: 1a862592cfa3
Revises: 87e2aa5fb559
Create Date: 2026-11-23 19:53:35.122139
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '1a862592cfa3'
down_revision: str | None = '87e2aa5fb559'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('digests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('recipient', sa.Text(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('message', sa.LargeBinary(), nullable=False),
    sa.Column('alerts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digests')),
    sa.UniqueConstraint('message_id', name=op.f('uq_digests_message_id'))
    )
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_digests_sent_at_next_attempt_at'), ['sent_at', 'next_attempt_at'], unique=False)

    op.create_table('digest_alerts',
    sa.Column('digest_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('recipient', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_digest_alerts_alert_id_alerts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], name=op.f('fk_digest_alerts_digest_id_digests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('digest_id', 'alert_id', name=op.f('pk_digest_alerts')),
    sa.UniqueConstraint('alert_id', 'recipient', name=op.f('uq_digest_alerts_alert_id_recipient'))
    )


def downgrade() -> None:
    op.drop_table('digest_alerts')
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_digests_sent_at_next_attempt_at'))

    op.drop_table('digests')
