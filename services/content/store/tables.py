from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, Integer, MetaData, String, Table, Text

from services.kit.access import access_tables
from services.kit.events.inbox import inbox_table
from services.kit.events.outbox import outbox_table
from services.kit.idempotency import idempotency_table

metadata = MetaData()

posts = Table(
    "posts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("author_user_id", String(200), nullable=False),
    Column("kind", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False, default=""),
    Column("url", String(2000), nullable=False, default=""),
    Column("tags", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    # A community's feed reads its posts newest first.
    Index("ix_posts_community_created", "community_id", "created_at"),
    # A member's posts, for their export and erasure.
    Index("ix_posts_community_author", "community_id", "author_user_id"),
)

idempotency_keys = idempotency_table(metadata)
# Facts staged with the change that caused them; the relay publishes them.
outbox = outbox_table(metadata)

inbox = inbox_table(metadata)
# The projection of members' roles this service authorizes calls with.
access = access_tables(metadata)
