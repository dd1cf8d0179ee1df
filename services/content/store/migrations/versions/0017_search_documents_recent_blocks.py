"""search documents on PostgreSQL: a stored tsvector holding each document's recent block

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Besides the analyzer's terms, each document holds the term of its community's block of
# documents: 'r' + the community's id without dashes + 'x' + (id >> 16), as
# services/content/text.py `block_term` spells it. Search asks the newest blocks first, so a
# common word in a large community costs the matches of its last blocks, not all of them
# (docs/decisions/0039). A stored column, so the id (assigned on insert) is at hand.
_UPGRADE = (
    "ALTER TABLE search_documents ADD COLUMN terms_vector tsvector GENERATED ALWAYS AS "
    "(to_tsvector('simple'::regconfig, terms || ' r' || replace(community_id, '-', '') "
    "|| 'x' || (id >> 16)::text)) STORED",
    "CREATE INDEX ix_search_documents_vector ON search_documents USING gin (terms_vector)",
    "DROP INDEX ix_search_documents_terms",
)
_DOWNGRADE = (
    "CREATE INDEX ix_search_documents_terms ON search_documents "
    "USING gin (to_tsvector('simple'::regconfig, terms))",
    "DROP INDEX ix_search_documents_vector",
    "ALTER TABLE search_documents DROP COLUMN terms_vector",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DOWNGRADE:
            op.execute(statement)
