from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

from services.kit.events.inbox import inbox_table
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
    # The member list's order: a page of a 100,000-member community is an index range, not a
    # sort of every membership (134 ms against 0.2 ms on PostgreSQL).
    Index("ix_memberships_joined", "community_id", "joined_at", "user_id"),
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

# --- Invites, rules, reports (Members I): who may come in, what they agree to, and what
# happens when someone breaks it ---

# Columns on the tables above, declared here so this area's schema reads in one place.
communities.append_column(
    # The current version of the community's rules; 0 while it has none.
    Column("rules_version", Integer, nullable=False, server_default="0")
)
memberships.append_column(
    Column("accepted_rules_version", Integer, nullable=False, server_default="0")
)
join_requests.append_column(
    # What the applicant accepted when asking; becomes the member's on approval.
    Column("accepted_rules_version", Integer, nullable=False, server_default="0")
)

# Every version of every community's rules: members accepted a particular one.
community_rules = Table(
    "community_rules",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("rules", JSON, nullable=False),
    Column("author_user_id", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Invite links. The code is a bearer secret: only its SHA-256 is stored, looked up by that.
invites = Table(
    "invites",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("code_prefix", String(8), nullable=False),
    Column("creator_user_id", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False, server_default="0"),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_invites_community", "community_id", "created_at"),
)

reports = Table(
    "reports",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("reporter_user_id", String(200), nullable=False),
    Column("target_user_id", String(200), nullable=False, server_default=""),
    Column("target_service", String(20), nullable=False, server_default=""),
    Column("target_kind", String(40), nullable=False, server_default=""),
    Column("target_id", String(36), nullable=False, server_default=""),
    Column("reason", Integer, nullable=False),
    Column("details", String(2000), nullable=False, server_default=""),
    Column("evidence", JSON, nullable=False),
    Column("state", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Reporter and target while the report is open, NULL after: one open report per pair,
    # enforced by the store even when two arrive at once.
    Column("open_key", String(500), nullable=True),
    Column("resolution", Integer, nullable=False, server_default="0"),
    Column("resolver_user_id", String(200), nullable=False, server_default=""),
    Column("resolver_role", Integer, nullable=False, server_default="0"),
    Column("note", String(1000), nullable=False, server_default=""),
    Column("until", DateTime(timezone=True), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("remove_content", Boolean, nullable=False, server_default=false()),
    Column("appeal_statement", String(2000), nullable=False, server_default=""),
    Column("appealed_at", DateTime(timezone=True), nullable=True),
    Column("appeal_resolution", Integer, nullable=False, server_default="0"),
    Column("appeal_resolver_user_id", String(200), nullable=False, server_default=""),
    Column("appeal_note", String(1000), nullable=False, server_default=""),
    Column("appeal_resolved_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("community_id", "open_key", name="uq_reports_open_key"),
    Index("ix_reports_queue", "community_id", "state", "created_at"),
    Index("ix_reports_reporter", "community_id", "reporter_user_id"),
    Index("ix_reports_target", "community_id", "target_user_id"),
)

# Posts as content's PostCreated facts describe them: a report about a post is checked
# against this (the post is in the report's community) and acts on its author, never on
# whoever the reporter names.
known_posts = Table(
    "known_posts",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("post_id", String(36), primary_key=True),
    Column("author_user_id", String(200), nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_known_posts_author", "community_id", "author_user_id"),
)


# --- Recognition (Members II B): points ledger, levels, badges, and the inbox of the
# consumers that turn other services' facts into points ---

# Append-only: a correction is a negative entry, never an edit. The same fact (event id,
# kudos of a day) lands at most once per community, whoever delivers it how often.
points_ledger = Table(
    "points_ledger",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("community_id", String(36), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("reason", String(40), nullable=False),
    Column("source_event_id", String(500), nullable=False),
    Column("awarded_by", String(200), nullable=False, server_default=""),
    Column("note", String(500), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The day in the community's time zone: what daily leaderboard buckets are keyed by.
    Column("local_date", Date, nullable=False),
    UniqueConstraint("community_id", "source_event_id", name="uq_points_ledger_source"),
    Index("ix_points_ledger_member", "community_id", "user_id", "id"),
    Index("ix_points_ledger_reason", "community_id", "user_id", "reason"),
    Index("ix_points_ledger_day", "community_id", "local_date"),
)

# A community's own level thresholds; none means the defaults.
recognition_levels = Table(
    "recognition_levels",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("level", Integer, primary_key=True),
    Column("min_points", BigInteger, nullable=False),
    Column("privileges", JSON, nullable=False),
    # Grows with every SetLevels: the version LevelsChanged carries (0: the default ladder).
    Column("version", BigInteger, nullable=False, server_default="0"),
)

# Each badge once per member and community, by the primary key.
member_badges = Table(
    "member_badges",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("code", String(40), primary_key=True),
    Column("entry_id", BigInteger, nullable=False),
    Column("awarded_at", DateTime(timezone=True), nullable=False),
)

inbox = inbox_table(metadata)


# --- Personas, segments, check-ins (Members II): who members are, the groups they fall
# into, and their daily study streaks ---

# The custom attributes a community defines for its members' profiles. Retired ones stay,
# so that their keys are never reused with another meaning.
profile_attributes = Table(
    "profile_attributes",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("key", String(40), primary_key=True),
    Column("label", String(80), nullable=False),
    Column("type", Integer, nullable=False),
    Column("required", Boolean, nullable=False, server_default=false()),
    Column("options", JSON, nullable=False),
    Column("position", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False),
)

member_profiles = Table(
    "member_profiles",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("interests", JSON, nullable=False),
    Column("learning_goals", JSON, nullable=False),
    Column("level", Integer, nullable=True),
    Column("time_zone", String(64), nullable=False, server_default=""),
    Column("birth_month", Integer, nullable=True),
    Column("birth_day", Integer, nullable=True),
    Column("birth_year", Integer, nullable=True),
    Column("birthday_visible", Boolean, nullable=False, server_default=false()),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_member_profiles_level", "community_id", "level"),
    Index("ix_member_profiles_time_zone", "community_id", "time_zone"),
)

# Interests again, one row each, so that "interested in python" is an index lookup.
profile_interests = Table(
    "profile_interests",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("tag", String(40), primary_key=True),
    Column("user_id", String(200), primary_key=True),
)

# Custom attribute values, one row per member and attribute, in the column of its type, so
# that segment conditions are indexed comparisons rather than scans of JSON.
profile_values = Table(
    "profile_values",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("key", String(40), primary_key=True),
    Column("value_text", String(200), nullable=True),
    Column("value_number", Float, nullable=True),
    Column("value_bool", Boolean, nullable=True),
    Column("value_date", Date, nullable=True),
    Index("ix_profile_values_text", "community_id", "key", "value_text"),
    Index("ix_profile_values_number", "community_id", "key", "value_number"),
    Index("ix_profile_values_bool", "community_id", "key", "value_bool"),
    Index("ix_profile_values_date", "community_id", "key", "value_date"),
)

segments = Table(
    "segments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("name", String(80), nullable=False),
    Column("description", String(500), nullable=False, server_default=""),
    # The rule as its JSON text: checked again against the schema whenever it is evaluated.
    Column("rule", Text, nullable=False),
    Column("created_by_user_id", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint("community_id", "name", name="uq_segments_name"),
    Index("ix_segments_community", "community_id", "created_at", "id"),
)

checkins = Table(
    "checkins",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("local_date", Date, nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("note", String(500), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # One check-in per member and local day, even when two arrive at once.
    UniqueConstraint("community_id", "user_id", "local_date", name="uq_checkins_day"),
    Index("ix_checkins_member", "community_id", "user_id", "created_at", "id"),
)

# Each member's streak as of their last check-in (see checkins.Streak).
checkin_streaks = Table(
    "checkin_streaks",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("current", Integer, nullable=False),
    Column("longest", Integer, nullable=False),
    Column("last_date", Date, nullable=False),
    Column("next_day_start", DateTime(timezone=True), nullable=False),
    Index("ix_checkin_streaks_current", "community_id", "current", "next_day_start"),
)

checkin_settings = Table(
    "checkin_settings",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("grace_days", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# --- Member care (Members II C): what the care sweep sends, and how each community wants it ---

# A community's care settings; none means the defaults (care.Settings).
care_settings = Table(
    "care_settings",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("inactive_after_days", Integer, nullable=False),
    Column("streak_reminder_hour", Integer, nullable=False),
    Column("birthdays", Boolean, nullable=False, server_default=true()),
    # [{"date": "MM-DD" or "YYYY-MM-DD", "name": ...}]
    Column("holidays", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every signal sent. The primary key is the promise: one signal of a kind per member and
# local day, however many sweeps run or rerun; the outbox row is staged only by the insert
# that created this row, in the same transaction.
care_signals = Table(
    "care_signals",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("local_date", Date, primary_key=True),
    Column("event_id", String(36), nullable=False),
    # Days inactive or streak days; 0 for greetings.
    Column("days", Integer, nullable=False, server_default="0"),
    Column("occasion", String(20), nullable=False, server_default=""),
    Column("holiday_name", String(80), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_care_signals_listing", "community_id", "created_at", "event_id"),
    Index("ix_care_signals_kind", "community_id", "kind", "created_at", "event_id"),
)
