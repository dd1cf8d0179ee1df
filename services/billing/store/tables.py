from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text

from services.kit.access import access_tables
from services.kit.events.inbox import inbox_table
from services.kit.idempotency import idempotency_table

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("kind", Integer, nullable=False),
    Column("name", String(120), nullable=False),
    Column("description", Text, nullable=False, default=""),
    # Money as an integer count of the currency's minor unit: floats cannot hold cents exactly.
    Column("price_currency", String(3), nullable=False),
    Column("price_amount_minor", BigInteger, nullable=False),
    Column("billing_period", Integer, nullable=False),
    Column("trial_days", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    # A community's catalogue lists its products in the order they were added.
    Index("ix_products_community_created", "community_id", "created_at"),
)

idempotency_keys = idempotency_table(metadata)

inbox = inbox_table(metadata)
# The projection of members' roles this service authorizes calls with.
access = access_tables(metadata)
