"""workers record the fingerprint of the config they run

During a rolling deploy, a worker with an older config must not disable, for everyone,
the feeds and rules it does not know: each worker records the hash of its shared
settings and since when that config runs; the newest config is the one the shared
tables follow.

Revision ID: b8c9d0e1f2a3
Revises: a7b8c9d0e1f2
Create Date: 2026-12-06 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'b8c9d0e1f2a3'
down_revision: str | None = 'a7b8c9d0e1f2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('workers', sa.Column('config_hash', sa.String(length=64), nullable=True))
    op.add_column('workers', sa.Column('config_since', sa.DateTime(timezone=True),
                                       nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.drop_column('config_since')
        batch.drop_column('config_hash')
