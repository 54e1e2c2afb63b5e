"""near-duplicate band index and meta

The LSH band keys of every seed and indexed item, keyed for lookup, and a meta
table recording which fingerprint version they were computed with. Items
stored before this revision have no band keys yet: ``monitor`` sees the
missing version at start and indexes them (``monitor dedup reindex`` does the
same by hand).

Revision ID: 43e82cf9b1b6
Revises: 5750171fc870
Create Date: 2026-11-23 18:23:50.506961
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '43e82cf9b1b6'
down_revision: str | None = '5750171fc870'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('meta',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_meta'))
    )
    op.create_table('seed_bands',
    sa.Column('key', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('seed_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.ForeignKeyConstraint(['seed_id'], ['seeds.id'], name=op.f('fk_seed_bands_seed_id_seeds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key', 'seed_id', name=op.f('pk_seed_bands')),
    sqlite_with_rowid=False
    )
    op.create_table('item_bands',
    sa.Column('key', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_item_bands_item_id_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key', 'item_id', name=op.f('pk_item_bands')),
    sqlite_with_rowid=False
    )


def downgrade() -> None:
    op.drop_table('item_bands')
    op.drop_table('seed_bands')
    op.drop_table('meta')
