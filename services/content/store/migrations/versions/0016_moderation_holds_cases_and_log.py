"""moderation: keyword rules that hold, moderation cases, the moderation log, reports

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("keyword_rules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("action", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("moderation", sa.String(length=16), server_default="visible", nullable=False)
        )
        batch_op.add_column(
            sa.Column("shown", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    op.create_table(
        "moderation_cases",
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("author_user_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor_user_id", sa.String(length=200), nullable=False),
        sa.Column("actor_role", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("appealed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("appeal_open", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("appeal_statement", sa.Text(), server_default="", nullable=False),
        sa.Column("appealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("open_reports", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("target_kind", "target_id"),
    )
    with op.batch_alter_table("moderation_cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_moderation_cases_queue", ["community_id", "queued_at"], unique=False
        )
    op.create_table(
        "moderation_log",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("actor_user_id", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("moderation_log", schema=None) as batch_op:
        batch_op.create_index("ix_moderation_log_community", ["community_id", "at"], unique=False)
    op.create_table(
        "content_reports",
        sa.Column("report_id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.Integer(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("report_id"),
    )
    with op.batch_alter_table("content_reports", schema=None) as batch_op:
        batch_op.create_index("ix_content_reports_target", ["target_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("content_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_content_reports_target")
    op.drop_table("content_reports")
    with op.batch_alter_table("moderation_log", schema=None) as batch_op:
        batch_op.drop_index("ix_moderation_log_community")
    op.drop_table("moderation_log")
    with op.batch_alter_table("moderation_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_moderation_cases_queue")
    op.drop_table("moderation_cases")
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_column("shown")
        batch_op.drop_column("moderation")
    with op.batch_alter_table("keyword_rules", schema=None) as batch_op:
        batch_op.drop_column("action")
