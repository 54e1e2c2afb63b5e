"""retention: item texts that were pruned, and what near-dedup keeps of them

Revision ID: c9d0e1f2a3b4
Revises: b8c9d0e1f2a3
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c9d0e1f2a3b4'
down_revision: str | None = 'b8c9d0e1f2a3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # In place (no batch): a nullable column without a default is a plain ADD COLUMN.
    op.add_column('items', sa.Column('text_pruned_at', sa.DateTime(timezone=True),
                                     nullable=True))
    op.create_table(
        'item_sketches',
        sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=False),
        sa.Column('words', sa.Integer(), nullable=False),
        sa.Column('shingles', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['items.id'], ondelete='CASCADE',
                                name=op.f('fk_item_sketches_item_id_items')),
        sa.PrimaryKeyConstraint('item_id', name=op.f('pk_item_sketches')))


def downgrade() -> None:
    op.drop_table('item_sketches')
    with op.batch_alter_table('items') as batch:
        batch.drop_column('text_pruned_at')
