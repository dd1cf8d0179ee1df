"""member activity

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_activity",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("points_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("level", sa.Integer(), server_default="1", nullable=False),
        sa.Column("last_active_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("community_id", "user_id"),
    )
    op.create_index(
        "ix_member_activity_points", "member_activity", ["community_id", "points_total"]
    )
    op.create_index(
        "ix_member_activity_last_active", "member_activity", ["community_id", "last_active_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_member_activity_last_active", table_name="member_activity")
    op.drop_index("ix_member_activity_points", table_name="member_activity")
    op.drop_table("member_activity")
