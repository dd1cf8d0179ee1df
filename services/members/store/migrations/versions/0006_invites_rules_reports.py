"""invites, rules, reports

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("communities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rules_version", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("accepted_rules_version", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("join_requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("accepted_rules_version", sa.Integer(), server_default="0", nullable=False)
        )

    op.create_table(
        "community_rules",
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("author_user_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "version"),
    )

    op.create_table(
        "invites",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("code_prefix", sa.String(length=8), nullable=False),
        sa.Column("creator_user_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), server_default="0", nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    op.create_index("ix_invites_community", "invites", ["community_id", "created_at"])

    op.create_table(
        "reports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("reporter_user_id", sa.String(length=200), nullable=False),
        sa.Column("target_user_id", sa.String(length=200), server_default="", nullable=False),
        sa.Column("target_service", sa.String(length=20), server_default="", nullable=False),
        sa.Column("target_kind", sa.String(length=40), server_default="", nullable=False),
        sa.Column("target_id", sa.String(length=36), server_default="", nullable=False),
        sa.Column("reason", sa.Integer(), nullable=False),
        sa.Column("details", sa.String(length=2000), server_default="", nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open_key", sa.String(length=500), nullable=True),
        sa.Column("resolution", sa.Integer(), server_default="0", nullable=False),
        sa.Column("resolver_user_id", sa.String(length=200), server_default="", nullable=False),
        sa.Column("resolver_role", sa.Integer(), server_default="0", nullable=False),
        sa.Column("note", sa.String(length=1000), server_default="", nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("appeal_statement", sa.String(length=2000), server_default="", nullable=False),
        sa.Column("appealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("appeal_resolution", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "appeal_resolver_user_id", sa.String(length=200), server_default="", nullable=False
        ),
        sa.Column("appeal_note", sa.String(length=1000), server_default="", nullable=False),
        sa.Column("appeal_resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("community_id", "open_key", name="uq_reports_open_key"),
    )
    op.create_index("ix_reports_queue", "reports", ["community_id", "state", "created_at"])
    op.create_index("ix_reports_reporter", "reports", ["community_id", "reporter_user_id"])
    op.create_index("ix_reports_target", "reports", ["community_id", "target_user_id"])


def downgrade() -> None:
    op.drop_index("ix_reports_target", table_name="reports")
    op.drop_index("ix_reports_reporter", table_name="reports")
    op.drop_index("ix_reports_queue", table_name="reports")
    op.drop_table("reports")
    op.drop_index("ix_invites_community", table_name="invites")
    op.drop_table("invites")
    op.drop_table("community_rules")
    with op.batch_alter_table("join_requests", schema=None) as batch_op:
        batch_op.drop_column("accepted_rules_version")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_column("accepted_rules_version")
    with op.batch_alter_table("communities", schema=None) as batch_op:
        batch_op.drop_column("rules_version")
