"""search documents: the analyzer's terms, indexed by FTS5 on SQLite and GIN on PostgreSQL

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite: an FTS5 table kept equal to search_documents by triggers, its rowid their id. Its
# tokenizer only splits at spaces what the analyzer already cut (services/content/text.py);
# `detail = column` keeps no positions (no phrase is ever asked for): a smaller index.
_SQLITE = (
    "CREATE VIRTUAL TABLE search_fts USING fts5("
    "terms, post_id UNINDEXED, kind UNINDEXED, "
    "tokenize = 'unicode61 remove_diacritics 0', detail = column)",
    "CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN "
    "INSERT INTO search_fts (rowid, terms, post_id, kind) "
    "VALUES (new.id, new.terms, new.post_id, new.kind); END",
    "CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN "
    "DELETE FROM search_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER search_documents_au AFTER UPDATE ON search_documents BEGIN "
    "DELETE FROM search_fts WHERE rowid = old.id; "
    "INSERT INTO search_fts (rowid, terms, post_id, kind) "
    "VALUES (new.id, new.terms, new.post_id, new.kind); END",
)
# PostgreSQL: the `simple` configuration splits at spaces and folds nothing the analyzer left.
_POSTGRESQL = (
    "CREATE INDEX ix_search_documents_terms ON search_documents "
    "USING gin (to_tsvector('simple'::regconfig, terms))",
)


def upgrade() -> None:
    op.create_table(
        "search_documents",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("doc_id", sa.String(length=48), nullable=False),
        sa.Column("post_id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("doc_id", name="uq_search_documents_doc"),
    )
    with op.batch_alter_table("search_documents", schema=None) as batch_op:
        batch_op.create_index("ix_search_documents_post", ["post_id"], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE if dialect == "sqlite" else _POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE search_fts")
    with op.batch_alter_table("search_documents", schema=None) as batch_op:
        batch_op.drop_index("ix_search_documents_post")
    op.drop_table("search_documents")
