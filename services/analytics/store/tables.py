from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, MetaData, String, Table

from services.kit.access import access_tables
from services.kit.events.inbox import inbox_table
from services.kit.idempotency import idempotency_table

metadata = MetaData()

# One row per community, kept by the event consumers.
# Member counts are not stored here: they are counted from member_states, whose rows are
# replaced by newer versions only, so events applied in any order give the same count.
community_stats = Table(
    "community_stats",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("post_count", BigInteger, nullable=False, default=0, server_default="0"),
    Column("activity_count", BigInteger, nullable=False, default=0, server_default="0"),
    Column("product_count", BigInteger, nullable=False, default=0, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

# The latest known state of each membership, by the version its events carry.
member_states = Table(
    "member_states",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("active", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_member_states_active", "community_id", "active"),
)

inbox = inbox_table(metadata)
# EraseMyData is the one mutating RPC.
idempotency_keys = idempotency_table(metadata)
# The projection of members' roles this service authorizes calls with.
access = access_tables(metadata)
