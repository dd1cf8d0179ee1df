from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text

from services.kit.access import access_tables
from services.kit.events.inbox import inbox_table
from services.kit.idempotency import idempotency_table

metadata = MetaData()

activities = Table(
    "activities",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("host_user_id", String(200), nullable=False),
    Column("kind", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("end_time", DateTime(timezone=True), nullable=True),
    Column("capacity", Integer, nullable=False),
    Column("location", String(300), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    # A community's calendar reads its activities by start time.
    Index("ix_activities_community_start", "community_id", "start_time"),
    # The activities a member hosts, for their export and erasure.
    Index("ix_activities_community_host", "community_id", "host_user_id"),
)

idempotency_keys = idempotency_table(metadata)

inbox = inbox_table(metadata)
# The projection of members' roles this service authorizes calls with.
access = access_tables(metadata)
