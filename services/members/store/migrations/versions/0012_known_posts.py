"""known posts

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "known_posts",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("post_id", sa.String(length=36), nullable=False),
        sa.Column("author_user_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "post_id"),
    )
    with op.batch_alter_table("known_posts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_known_posts_author", ["community_id", "author_user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("known_posts", schema=None) as batch_op:
        batch_op.drop_index("ix_known_posts_author")

    op.drop_table("known_posts")
