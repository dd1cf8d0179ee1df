"""challenges (goals, counted facts, progress) and invitations to a segment

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
        "challenges",
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("goal_kind", sa.Integer(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("path_id", sa.String(length=36), server_default="", nullable=False),
        sa.Column("reward_points", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("activity_id"),
    )
    op.create_index(
        "ix_challenges_community_kind", "challenges", ["community_id", "goal_kind"], unique=False
    )
    op.create_table(
        "challenge_facts",
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("fact_key", sa.String(length=200), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("counted", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("happened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", "user_id", "fact_key"),
    )
    op.create_index(
        "ix_challenge_facts_member", "challenge_facts", ["community_id", "user_id"], unique=False
    )
    op.create_table(
        "challenge_progress",
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", "user_id"),
    )
    op.create_index(
        "ix_challenge_progress_board",
        "challenge_progress",
        ["activity_id", "progress"],
        unique=False,
    )
    op.create_index(
        "ix_challenge_progress_member",
        "challenge_progress",
        ["community_id", "user_id"],
        unique=False,
    )
    op.create_table(
        "activity_invitations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("segment_id", sa.String(length=36), nullable=False),
        sa.Column("invited_by_user_id", sa.String(length=200), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("invited_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_activity_invitations_activity", "activity_invitations", ["activity_id"], unique=False
    )
    op.create_table(
        "activity_invitees",
        sa.Column("invitation_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("invitation_id", "user_id"),
    )
    op.create_index(
        "ix_activity_invitees_member",
        "activity_invitees",
        ["community_id", "user_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_activity_invitees_member", table_name="activity_invitees")
    op.drop_table("activity_invitees")
    op.drop_index("ix_activity_invitations_activity", table_name="activity_invitations")
    op.drop_table("activity_invitations")
    op.drop_index("ix_challenge_progress_member", table_name="challenge_progress")
    op.drop_index("ix_challenge_progress_board", table_name="challenge_progress")
    op.drop_table("challenge_progress")
    op.drop_index("ix_challenge_facts_member", table_name="challenge_facts")
    op.drop_table("challenge_facts")
    op.drop_index("ix_challenges_community_kind", table_name="challenges")
    op.drop_table("challenges")
