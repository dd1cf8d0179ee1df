from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table

from services.kit.idempotency import idempotency_table

metadata = MetaData()

communities = Table(
    "communities",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("slug", String(64), nullable=False, unique=True),
    Column("topic", String(80), nullable=False),
    Column("mission", String(2000), nullable=False, default=""),
    Column("audience", String(500), nullable=False, default=""),
    Column("tags", JSON, nullable=False),
    Column("visibility", Integer, nullable=False),
    Column("join_policy", Integer, nullable=False),
    Column("owner_user_id", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("community_id", String(36), ForeignKey("communities.id"), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("role", Integer, nullable=False),
    Column("joined_at", DateTime(timezone=True), nullable=False),
    Index("ix_memberships_user", "user_id"),
)

idempotency_keys = idempotency_table(metadata)
