"""paid tickets: an activity's ticket product and the projection of ticket entitlements

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
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ticket_product_id", sa.String(length=36), server_default="", nullable=False)
        )
    op.create_table(
        "ticket_entitlements",
        sa.Column("entitlement_id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("entitlement_id"),
    )
    op.create_index(
        "ix_ticket_entitlements_member",
        "ticket_entitlements",
        ["community_id", "user_id", "product_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_ticket_entitlements_member", table_name="ticket_entitlements")
    op.drop_table("ticket_entitlements")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_column("ticket_product_id")
