"""keyword rules: watched words and phrases per community

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "keyword_rules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("phrase", sa.String(length=100), nullable=False),
        sa.Column("phrase_key", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("community_id", "phrase_key", name="uq_keyword_rules_community_phrase"),
    )
    with op.batch_alter_table("keyword_rules", schema=None) as batch_op:
        batch_op.create_index(
            "ix_keyword_rules_community", ["community_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("keyword_rules", schema=None) as batch_op:
        batch_op.drop_index("ix_keyword_rules_community")
    op.drop_table("keyword_rules")
