"""Billing's tables: the catalogue, charges and their invoices and refunds, the ledger,
entitlements, and what the kit keeps (idempotency keys, inbox, outbox, access projection).

Money is always an integer count of the currency's minor unit: floats cannot hold cents."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.kit.access import access_tables
from services.kit.events.inbox import inbox_table
from services.kit.events.outbox import outbox_table
from services.kit.idempotency import idempotency_table
from services.kit.schedule import schedule_table

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("kind", Integer, nullable=False),
    Column("name", String(120), nullable=False),
    Column("description", Text, nullable=False, default=""),
    # The current price, copied from `prices` for reading: a product is read far more often
    # than its price changes.
    Column("price_currency", String(3), nullable=False),
    Column("price_amount_minor", BigInteger, nullable=False),
    Column("billing_period", Integer, nullable=False),
    Column("trial_days", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("disclosure", Text, nullable=False, server_default=""),
    Column("price_id", String(36), nullable=False, server_default=""),
    Column("archived_at", DateTime(timezone=True), nullable=True),
    # A community's catalogue lists its products in the order they were added.
    Index("ix_products_community_created", "community_id", "created_at"),
)

# Every price a product ever had: a price never changes in place, a change is a new row, so
# a charge names exactly the price it was made at.
prices = Table(
    "prices",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("product_id", String(36), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("billing_period", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_prices_product", "product_id", "created_at"),
)

charges = Table(
    "charges",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("state", Integer, nullable=False),
    Column("product_ids", JSON, nullable=False),
    Column("payment_method", String(100), nullable=False),
    Column("provider_payment_id", String(100), nullable=False, server_default=""),
    Column("next_action_url", Text, nullable=False, server_default=""),
    Column("failure_reason", String(40), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_charges_community_created", "community_id", "created_at"),
    Index("ix_charges_community_user", "community_id", "user_id", "created_at"),
    Index("ix_charges_provider_payment", "provider_payment_id"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("charge_id", String(36), ForeignKey("charges.id"), nullable=False, unique=True),
    Column("user_id", String(200), nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    # Lines as written at checkout: [{description, product_id, price_id, amount_minor, kind}].
    Column("lines", JSON, nullable=False),
    Column("bill_to", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("community_id", "number", name="uq_invoices_community_number"),
    Index("ix_invoices_community_user", "community_id", "user_id", "created_at"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("charge_id", String(36), ForeignKey("charges.id"), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("state", Integer, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("by_user_id", String(200), nullable=False),
    Column("provider_refund_id", String(100), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_refunds_charge", "charge_id"),
    Index("ix_refunds_community_created", "community_id", "created_at"),
)

# The ledger: append-only (triggers refuse UPDATE and DELETE, see the migration). A
# transaction is a set of entries that sum to zero per currency; balances are sums.
ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("charge_id", String(36), nullable=False, server_default=""),
    Column("refund_id", String(36), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_ledger_transactions_charge", "charge_id"),
    # One ledger transaction per charge and per refund: a redelivered webhook cannot post twice.
    UniqueConstraint("kind", "charge_id", "refund_id", name="uq_ledger_transactions_cause"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_id", String(36), ForeignKey("ledger_transactions.id"), nullable=False),
    Column("community_id", String(36), nullable=False),
    Column("account", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    # Debits positive, credits negative.
    Column("amount_minor", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_ledger_entries_community", "community_id", "id"),
    Index("ix_ledger_entries_transaction", "transaction_id"),
)

entitlements = Table(
    "entitlements",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("product_id", String(36), nullable=False),
    Column("source", Integer, nullable=False),
    Column("charge_id", String(36), nullable=False, server_default=""),
    Column("granted_by", String(200), nullable=False, server_default=""),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_entitlements_community_user", "community_id", "user_id", "created_at"),
    Index("ix_entitlements_charge", "charge_id"),
)

# Provider events applied, by the provider's event id: a redelivery changes nothing.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("event_id", String(100), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Recurring payments for membership plans (services/billing/subscriptions). `mrr_minor` is
# what the subscription adds to its community's monthly recurring revenue now: every
# MrrMoved is the difference of two of its values, so the moves add up to the MRR.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("product_id", String(36), nullable=False),
    Column("price_id", String(36), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("billing_period", Integer, nullable=False),
    Column("state", Integer, nullable=False),
    Column("trialing", Integer, nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=True),
    Column("period_end", DateTime(timezone=True), nullable=True),
    Column("failed_attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("credit_minor", BigInteger, nullable=False),
    Column("pending_product_id", String(36), nullable=False),
    Column("latest_charge_id", String(36), nullable=False),
    Column("entitlement_id", String(36), nullable=False),
    Column("payment_method", String(100), nullable=False),
    Column("mrr_minor", BigInteger, nullable=False),
    # Set once a paid subscription churned: its next first payment is a reactivation.
    Column("churned", Integer, nullable=False),
    # The coupon's discount: a percentage or an amount off, for so many more paid periods
    # (-1: for ever; 0: none left).
    Column("coupon_id", String(36), nullable=False),
    Column("percent_off", Integer, nullable=False),
    Column("amount_off_minor", BigInteger, nullable=False),
    Column("discount_periods_left", Integer, nullable=False),
    # "<community>/<user>/<product>" while it is not ended, else null: one live subscription
    # per member and plan, held by the unique key whatever races.
    Column("live_key", String(300), nullable=True, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_subscriptions_community_created", "community_id", "created_at"),
    Index("ix_subscriptions_community_user", "community_id", "user_id", "created_at"),
)

# Which charges pay for a subscription, and what for: its first period ("start"), a
# renewal (the attempt counts the tries of one period) or a move to a dearer plan
# ("proration", naming the plan).
subscription_charges = Table(
    "subscription_charges",
    metadata,
    Column("charge_id", String(36), ForeignKey("charges.id"), primary_key=True),
    Column("subscription_id", String(36), nullable=False),
    Column("purpose", String(20), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("product_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_subscription_charges_subscription", "subscription_id"),
)

# Coupons subscribers enter by code; `segment_id` names the segment whose members (a
# snapshot taken when it was created, `coupon_members`) may use it.
coupons = Table(
    "coupons",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("code", String(40), nullable=False),
    Column("percent_off", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_off_minor", BigInteger, nullable=False),
    Column("duration", Integer, nullable=False),
    Column("duration_periods", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("segment_id", String(36), nullable=False),
    Column("eligible_members", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("community_id", "code", name="uq_coupons_community_code"),
    Index("ix_coupons_community_created", "community_id", "created_at"),
)

coupon_members = Table(
    "coupon_members",
    metadata,
    Column("coupon_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Index("ix_coupon_members_community_user", "community_id", "user_id"),
)

# Renewals, dunning retries and provider submissions, run once (docs/decisions/0018).
scheduled_jobs = schedule_table(metadata)

idempotency_keys = idempotency_table(metadata)

inbox = inbox_table(metadata)
outbox = outbox_table(metadata)
# The projection of members' roles this service authorizes calls with.
access = access_tables(metadata)
