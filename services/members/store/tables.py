from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    true,
)

from services.kit.events.outbox import outbox_table
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
    Column("locale", String(35), nullable=False, server_default=""),
    Column("time_zone", String(64), nullable=False, server_default=""),
    Column("archived_at", DateTime(timezone=True), nullable=True),
    Column("join_questions", JSON, nullable=True),
    # Listing walks communities newest first.
    Index("ix_communities_created", "created_at", "id"),
    Index("ix_communities_topic", "topic", "created_at"),
)

# Tags again, one row each, so that listing by tag is an indexed lookup on every store.
community_tags = Table(
    "community_tags",
    metadata,
    Column("community_id", String(36), ForeignKey("communities.id"), primary_key=True),
    Column("tag", String(40), primary_key=True),
    Index("ix_community_tags_tag", "tag", "community_id"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("community_id", String(36), ForeignKey("communities.id"), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("role", Integer, nullable=False),
    Column("joined_at", DateTime(timezone=True), nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("left_at", DateTime(timezone=True), nullable=True),
    Column("muted_until", DateTime(timezone=True), nullable=True),
    Column("banned_until", DateTime(timezone=True), nullable=True),
    Index("ix_memberships_user", "user_id"),
)

# The latest request of each applicant; a rejected applicant may ask again.
join_requests = Table(
    "join_requests",
    metadata,
    Column("community_id", String(36), ForeignKey("communities.id"), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("answers", JSON, nullable=False),
    Column("state", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("reviewer_user_id", String(200), nullable=False, server_default=""),
    Column("reviewed_at", DateTime(timezone=True), nullable=True),
    Column("reason", String(1000), nullable=False, server_default=""),
    Index("ix_join_requests_queue", "community_id", "state", "created_at"),
)

# Every moderator and admin action, for the community's admins to read.
moderation_log = Table(
    "moderation_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("community_id", String(36), nullable=False),
    Column("actor_user_id", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("target_user_id", String(200), nullable=False),
    Column("reason", String(1000), nullable=False, server_default=""),
    Column("until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_moderation_log_community", "community_id", "id"),
)

idempotency_keys = idempotency_table(metadata)
outbox = outbox_table(metadata)

# --- Activity: what each member has done lately, for segments, leaderboards and care ---

# One row per member who has done anything counted: kept up to date by the points ledger
# (every award moves points_total and last_active_at in the same transaction), read by
# segments and the member-care sweep, so neither has to scan the ledger.
member_activity = Table(
    "member_activity",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("points_total", Integer, nullable=False, server_default="0"),
    Column("level", Integer, nullable=False, server_default="1"),
    Column("last_active_at", DateTime(timezone=True), nullable=True),
    Index("ix_member_activity_points", "community_id", "points_total"),
    Index("ix_member_activity_last_active", "community_id", "last_active_at"),
)
