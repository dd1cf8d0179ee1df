"""points ledger, levels, badges and the consumers' inbox

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "points_ledger",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("source_event_id", sa.String(length=500), nullable=False),
        sa.Column("awarded_by", sa.String(length=200), server_default="", nullable=False),
        sa.Column("note", sa.String(length=500), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("community_id", "source_event_id", name="uq_points_ledger_source"),
    )
    op.create_index("ix_points_ledger_member", "points_ledger", ["community_id", "user_id", "id"])
    op.create_index(
        "ix_points_ledger_reason", "points_ledger", ["community_id", "user_id", "reason"]
    )
    op.create_index("ix_points_ledger_day", "points_ledger", ["community_id", "local_date"])
    op.create_table(
        "recognition_levels",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("min_points", sa.BigInteger(), nullable=False),
        sa.Column("privileges", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "level"),
    )
    op.create_table(
        "member_badges",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("awarded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "user_id", "code"),
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_table("member_badges")
    op.drop_table("recognition_levels")
    op.drop_index("ix_points_ledger_day", table_name="points_ledger")
    op.drop_index("ix_points_ledger_reason", table_name="points_ledger")
    op.drop_index("ix_points_ledger_member", table_name="points_ledger")
    op.drop_table("points_ledger")
