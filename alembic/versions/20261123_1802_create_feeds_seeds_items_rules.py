"""create feeds seeds items rules

Revision ID: 5750171fc870
Revises: 
Create Date: 2026-11-23 18:02:13.631189
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5750171fc870'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('feeds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('interval_seconds', sa.Integer(), nullable=False),
    sa.Column('fetch_url', sa.Text(), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('etag', sa.Text(), nullable=True),
    sa.Column('last_modified', sa.Text(), nullable=True),
    sa.Column('body_hash', sa.String(length=64), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('parse_warning', sa.Text(), nullable=True),
    sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feeds')),
    sa.UniqueConstraint('url', name=op.f('uq_feeds_url'))
    )
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feeds_next_poll_at'), ['next_poll_at'], unique=False)

    op.create_table('rules',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules')),
    sa.UniqueConstraint('name', name=op.f('uq_rules_name'))
    )
    op.create_table('seeds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('text_hash', sa.String(length=64), nullable=True),
    sa.Column('source_url', sa.Text(), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('loaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seeds')),
    sa.UniqueConstraint('name', name=op.f('uq_seeds_name'))
    )
    with op.batch_alter_table('seeds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seeds_source_url'), ['source_url'], unique=False)
        batch_op.create_index(batch_op.f('ix_seeds_text_hash'), ['text_hash'], unique=False)

    op.create_table('items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('feed_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('guid', sa.Text(), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('final_url', sa.Text(), nullable=True),
    sa.Column('canonical_url', sa.Text(), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('author', sa.Text(), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('site_name', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('text_source', sa.String(length=16), nullable=False),
    sa.Column('text_hash', sa.String(length=64), nullable=True),
    sa.Column('page_status', sa.Integer(), nullable=True),
    sa.Column('page_error', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('duplicate_of_item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('duplicate_of_seed_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('dedup_method', sa.String(length=16), nullable=True),
    sa.Column('similarity', sa.Float(), nullable=True),
    sa.CheckConstraint("(status = 'new' AND duplicate_of_item_id IS NULL AND duplicate_of_seed_id IS NULL) OR (status = 'duplicate' AND dedup_method IS NOT NULL AND (duplicate_of_item_id IS NULL) <> (duplicate_of_seed_id IS NULL))", name=op.f('ck_items_duplicate_of')),
    sa.CheckConstraint("dedup_method IS NULL OR dedup_method IN ('guid', 'url', 'exact', 'near')", name=op.f('ck_items_dedup_method')),
    sa.CheckConstraint("status IN ('new', 'duplicate')", name=op.f('ck_items_status')),
    sa.CheckConstraint("text_source IN ('page', 'feed_content', 'feed_summary', 'title', 'none')", name=op.f('ck_items_text_source')),
    sa.ForeignKeyConstraint(['duplicate_of_item_id'], ['items.id'], name=op.f('fk_items_duplicate_of_item_id_items')),
    sa.ForeignKeyConstraint(['duplicate_of_seed_id'], ['seeds.id'], name=op.f('fk_items_duplicate_of_seed_id_seeds')),
    sa.ForeignKeyConstraint(['feed_id'], ['feeds.id'], name=op.f('fk_items_feed_id_feeds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_items')),
    sa.UniqueConstraint('feed_id', 'guid', name=op.f('uq_items_feed_id_guid'))
    )
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_items_canonical_url'), ['canonical_url'], unique=False)
        batch_op.create_index(batch_op.f('ix_items_duplicate_of_item_id'), ['duplicate_of_item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_items_duplicate_of_seed_id'), ['duplicate_of_seed_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_items_feed_id'), ['feed_id'], unique=False)
        batch_op.create_index('ix_items_status_created_at', ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_items_text_hash'), ['text_hash'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_items_text_hash'))
        batch_op.drop_index('ix_items_status_created_at')
        batch_op.drop_index(batch_op.f('ix_items_feed_id'))
        batch_op.drop_index(batch_op.f('ix_items_duplicate_of_seed_id'))
        batch_op.drop_index(batch_op.f('ix_items_duplicate_of_item_id'))
        batch_op.drop_index(batch_op.f('ix_items_canonical_url'))

    op.drop_table('items')
    with op.batch_alter_table('seeds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seeds_text_hash'))
        batch_op.drop_index(batch_op.f('ix_seeds_source_url'))

    op.drop_table('seeds')
    op.drop_table('rules')
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feeds_next_poll_at'))

    op.drop_table('feeds')

