"""channel_alerts, channel_messages, channel_state: alerts told to [[channels]] at once

A rule's `notify` channels get each alert: channel_alerts is written in the transaction
that stores the alert, channel_messages holds what is sent (with its idempotency key,
attempts, dead letters), channel_state each channel's per-minute budget shared by the
workers (monitor.store.channels).

Revision ID: 13a7b0683bab
Revises: 7b1d2e9c4a60
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '13a7b0683bab'
down_revision: str | None = '7b1d2e9c4a60'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('channel_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('story_id', sa.BigInteger(), nullable=True),
    sa.Column('item_id', sa.BigInteger(), nullable=True),
    sa.Column('follow_up', sa.Boolean(), nullable=False),
    sa.Column('alerts', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.Text(), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_messages')),
    sa.UniqueConstraint('key', name=op.f('uq_channel_messages_key'))
    )
    with op.batch_alter_table('channel_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_messages_channel_state_next_attempt_at'), ['channel', 'state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_channel_messages_channel_story_id'), ['channel', 'story_id'], unique=False)

    op.create_table('channel_state',
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_in_window', sa.Integer(), nullable=False),
    sa.Column('paused_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('channel', name=op.f('pk_channel_state'))
    )
    op.create_table('channel_alerts',
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_channel_alerts_alert_id_alerts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['channel_messages.id'], name=op.f('fk_channel_alerts_message_id_channel_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel', 'alert_id', name=op.f('pk_channel_alerts'))
    )
    with op.batch_alter_table('channel_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_alerts_channel_message_id'), ['channel', 'message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_channel_alerts_message_id'), ['message_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('channel_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channel_alerts_message_id'))
        batch_op.drop_index(batch_op.f('ix_channel_alerts_channel_message_id'))

    op.drop_table('channel_alerts')
    op.drop_table('channel_state')
    with op.batch_alter_table('channel_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channel_messages_channel_story_id'))
        batch_op.drop_index(batch_op.f('ix_channel_messages_channel_state_next_attempt_at'))

    op.drop_table('channel_messages')
