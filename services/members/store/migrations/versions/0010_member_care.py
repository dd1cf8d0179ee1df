"""member care

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "care_settings",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("inactive_after_days", sa.Integer(), nullable=False),
        sa.Column("streak_reminder_hour", sa.Integer(), nullable=False),
        sa.Column("birthdays", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("holidays", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("community_id"),
    )
    op.create_table(
        "care_signals",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("occasion", sa.String(length=20), server_default="", nullable=False),
        sa.Column("holiday_name", sa.String(length=80), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "user_id", "kind", "local_date"),
    )
    op.create_index(
        "ix_care_signals_listing", "care_signals", ["community_id", "created_at", "event_id"]
    )
    op.create_index(
        "ix_care_signals_kind",
        "care_signals",
        ["community_id", "kind", "created_at", "event_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_care_signals_kind", table_name="care_signals")
    op.drop_index("ix_care_signals_listing", table_name="care_signals")
    op.drop_table("care_signals")
    op.drop_table("care_settings")
