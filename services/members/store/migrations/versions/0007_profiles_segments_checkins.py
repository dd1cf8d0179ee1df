"""profiles, segments, check-ins

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "profile_attributes",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("required", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "key"),
    )
    op.create_table(
        "member_profiles",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("interests", sa.JSON(), nullable=False),
        sa.Column("learning_goals", sa.JSON(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("time_zone", sa.String(length=64), server_default="", nullable=False),
        sa.Column("birth_month", sa.Integer(), nullable=True),
        sa.Column("birth_day", sa.Integer(), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("birthday_visible", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "user_id"),
    )
    with op.batch_alter_table("member_profiles", schema=None) as batch_op:
        batch_op.create_index("ix_member_profiles_level", ["community_id", "level"])
        batch_op.create_index("ix_member_profiles_time_zone", ["community_id", "time_zone"])
    op.create_table(
        "profile_interests",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("tag", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "tag", "user_id"),
    )
    op.create_table(
        "profile_values",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("value_text", sa.String(length=200), nullable=True),
        sa.Column("value_number", sa.Float(), nullable=True),
        sa.Column("value_bool", sa.Boolean(), nullable=True),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("community_id", "user_id", "key"),
    )
    with op.batch_alter_table("profile_values", schema=None) as batch_op:
        for column in ("text", "number", "bool", "date"):
            batch_op.create_index(
                f"ix_profile_values_{column}", ["community_id", "key", f"value_{column}"]
            )
    op.create_table(
        "segments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=500), server_default="", nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("created_by_user_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("community_id", "name", name="uq_segments_name"),
    )
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.create_index("ix_segments_community", ["community_id", "created_at", "id"])
    op.create_table(
        "checkins",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=500), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("community_id", "user_id", "local_date", name="uq_checkins_day"),
    )
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.create_index("ix_checkins_member", ["community_id", "user_id", "created_at", "id"])
    op.create_table(
        "checkin_streaks",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("current", sa.Integer(), nullable=False),
        sa.Column("longest", sa.Integer(), nullable=False),
        sa.Column("last_date", sa.Date(), nullable=False),
        sa.Column("next_day_start", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "user_id"),
    )
    with op.batch_alter_table("checkin_streaks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_checkin_streaks_current", ["community_id", "current", "next_day_start"]
        )
    op.create_table(
        "checkin_settings",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("grace_days", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("community_id"),
    )


def downgrade() -> None:
    for table in (
        "checkin_settings",
        "checkin_streaks",
        "checkins",
        "segments",
        "profile_values",
        "profile_interests",
        "member_profiles",
        "profile_attributes",
    ):
        op.drop_table(table)
