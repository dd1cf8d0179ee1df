"""subscriptions, the charges that pay for them, coupons, and the scheduled jobs table

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
        "subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("price_id", sa.String(length=36), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("billing_period", sa.Integer(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("trialing", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("credit_minor", sa.BigInteger(), nullable=False),
        sa.Column("pending_product_id", sa.String(length=36), nullable=False),
        sa.Column("latest_charge_id", sa.String(length=36), nullable=False),
        sa.Column("entitlement_id", sa.String(length=36), nullable=False),
        sa.Column("payment_method", sa.String(length=100), nullable=False),
        sa.Column("mrr_minor", sa.BigInteger(), nullable=False),
        sa.Column("churned", sa.Integer(), nullable=False),
        sa.Column("coupon_id", sa.String(length=36), nullable=False),
        sa.Column("percent_off", sa.Integer(), nullable=False),
        sa.Column("amount_off_minor", sa.BigInteger(), nullable=False),
        sa.Column("discount_periods_left", sa.Integer(), nullable=False),
        sa.Column("live_key", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("live_key"),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscriptions_community_created", ["community_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_subscriptions_community_user",
            ["community_id", "user_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "subscription_charges",
        sa.Column("charge_id", sa.String(length=36), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["charge_id"], ["charges.id"]),
        sa.PrimaryKeyConstraint("charge_id"),
    )
    with op.batch_alter_table("subscription_charges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscription_charges_subscription", ["subscription_id"], unique=False
        )

    op.create_table(
        "coupons",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("percent_off", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_off_minor", sa.BigInteger(), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("duration_periods", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("segment_id", sa.String(length=36), nullable=False),
        sa.Column("eligible_members", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("community_id", "code", name="uq_coupons_community_code"),
    )
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index(
            "ix_coupons_community_created", ["community_id", "created_at"], unique=False
        )

    op.create_table(
        "coupon_members",
        sa.Column("coupon_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("coupon_id", "user_id"),
    )
    with op.batch_alter_table("coupon_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_coupon_members_community_user", ["community_id", "user_id"], unique=False
        )

    op.create_table(
        "scheduled_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("community_id", sa.String(length=36), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "key", name="uq_scheduled_jobs_kind_key"),
    )
    with op.batch_alter_table("scheduled_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_scheduled_jobs_due", ["due_at"], unique=False)


def downgrade() -> None:
    op.drop_table("scheduled_jobs")
    op.drop_table("coupon_members")
    op.drop_table("coupons")
    op.drop_table("subscription_charges")
    op.drop_table("subscriptions")
