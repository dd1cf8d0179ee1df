from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table

metadata = MetaData()

# One row per community, kept by the event consumers; no mutating RPC, so no idempotency keys.
community_stats = Table(
    "community_stats",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("member_count", BigInteger, nullable=False, default=0, server_default="0"),
    Column("post_count", BigInteger, nullable=False, default=0, server_default="0"),
    Column("activity_count", BigInteger, nullable=False, default=0, server_default="0"),
    Column("product_count", BigInteger, nullable=False, default=0, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)
