"""post views: once per member, post and local day

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "post_views",
        sa.Column("post_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("local_date", sa.String(length=10), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("viewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("post_id", "user_id", "local_date"),
    )
    with op.batch_alter_table("post_views", schema=None) as batch_op:
        batch_op.create_index("ix_post_views_member", ["community_id", "user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("post_views", schema=None) as batch_op:
        batch_op.drop_index("ix_post_views_member")
    op.drop_table("post_views")
