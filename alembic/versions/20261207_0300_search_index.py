"""search: a full-text index of items; backfilled alerts; a rule's backfill applied

SQLite: the FTS5 table items_fts (rowid = item id) and a trigger that drops a deleted
item's row. PostgreSQL: item_search (item id, its status and time, tsvector) with a GIN index,
deleted with its item. Neither is a model (see monitor.store.search): alembic/env.py leaves them out
of `alembic check`. The items already stored are indexed at the next start (or
`monitor db upgrade`), in batches that resume where an interrupted fill stopped:
this revision only marks them (meta search.fill_below).

alerts.backfilled marks an alert raised by `rules backfill` (or a rule's backfill key)
on an item stored before; rules.backfill_key is the backfill last applied to a rule.

Revision ID: 5e4c3b2a1f07
Revises: a28e7b761bf6
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5e4c3b2a1f07'
down_revision: str | None = 'a28e7b761bf6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # status and created_at repeat the item's (kept by monitor.store): search
        # filters originals and a time window without a join to items, which at 1M
        # items cost more than the search.
        op.execute("CREATE TABLE item_search ("
                   " item_id BIGINT PRIMARY KEY REFERENCES items (id) ON DELETE CASCADE,"
                   " status VARCHAR(16) NOT NULL,"
                   " created_at TIMESTAMP WITH TIME ZONE NOT NULL,"
                   " doc tsvector NOT NULL)")
        # GIN only: with a btree on created_at (or item_id) beside it, the planner
        # takes the btree's range and reads every document in it to test the query.
        op.execute("CREATE INDEX ix_item_search_doc ON item_search USING gin (doc)")
    else:
        # The ascii tokenizer keeps each folded word whole (every non-ASCII character is
        # a word character there; "_" is made one): the words are folded by monitor.
        op.execute("CREATE VIRTUAL TABLE items_fts USING fts5("
                   "title, body, tokenize = \"ascii tokenchars '_'\")")
        op.execute("CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN"
                   " DELETE FROM items_fts WHERE rowid = old.id; END")
    top = bind.execute(sa.text("SELECT max(id) FROM items")).scalar()
    if top:
        meta = sa.table("meta", sa.column("name", sa.String), sa.column("value", sa.Text))
        op.bulk_insert(meta, [{"name": "search.fill_below", "value": str(top + 1)},
                              {"name": "search.filled_through", "value": "0"}])
    op.add_column('alerts', sa.Column('backfilled', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.add_column('rules', sa.Column('backfill_key', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rules', schema=None) as batch_op:
        batch_op.drop_column('backfill_key')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('backfilled')
    op.execute("DELETE FROM meta WHERE name IN ('search.fill_below', 'search.filled_through')")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE item_search")
    else:
        op.execute("DROP TRIGGER items_fts_delete")
        op.execute("DROP TABLE items_fts")
