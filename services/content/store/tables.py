from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
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

from services.kit.access import access_tables
from services.kit.events.inbox import inbox_table
from services.kit.events.outbox import outbox_table
from services.kit.idempotency import idempotency_table
from services.kit.schedule import schedule_table

metadata = MetaData()

topics = Table(
    "topics",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("name", String(80), nullable=False),
    # The name folded for comparison: two topics of a community never differ by case alone.
    Column("name_key", String(80), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint("community_id", "name_key", name="uq_topics_community_name"),
)

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
    Column("summary", Text, nullable=False, server_default=""),
    Column("topic_id", String(36), nullable=True),
    # A list of {"url", "media_type", "seconds", "nanos"}.
    Column("media", JSON, nullable=True),
    # 1 draft, 2 published, 3 deleted (PostState).
    Column("state", Integer, nullable=False, server_default="2"),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Column("deleted_by", String(200), nullable=True),
    Column("pinned_at", DateTime(timezone=True), nullable=True),
    # Questions: the accepted answer, the answers that are not deleted, the first answer.
    Column("accepted_answer_id", String(36), nullable=True),
    Column("answer_count", Integer, nullable=False, server_default="0"),
    Column("first_answer_at", DateTime(timezone=True), nullable=True),
    # Calendar: when a draft is to go live; when it could not, and why.
    Column("scheduled_at", DateTime(timezone=True), nullable=True),
    Column("missed_at", DateTime(timezone=True), nullable=True),
    Column("missed_reason", Text, nullable=False, server_default=""),
    # A community's feed reads its posts newest first.
    Index("ix_posts_community_created", "community_id", "created_at"),
    Index("ix_posts_feed", "community_id", "state", "published_at"),
    Index("ix_posts_topic_feed", "community_id", "topic_id", "state", "published_at"),
    Index("ix_posts_pinned", "community_id", "pinned_at"),
    # The unanswered-questions queue.
    Index("ix_posts_unanswered", "community_id", "kind", "answer_count", "published_at"),
    # A member's posts, for their export and erasure.
    Index("ix_posts_community_author", "community_id", "author_user_id"),
    Index("ix_posts_calendar", "community_id", "scheduled_at"),
)

# Each edit of a post: what the changed fields held before it.
post_revisions = Table(
    "post_revisions",
    metadata,
    Column("post_id", String(36), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("editor_user_id", String(200), nullable=False),
    Column("edited_at", DateTime(timezone=True), nullable=False),
    Column("changed_fields", JSON, nullable=False),
    Column("previous", JSON, nullable=False),
    Index("ix_post_revisions_editor", "community_id", "editor_user_id"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("post_id", String(36), nullable=False),
    # The top-level comment a reply answers; null for a top-level comment.
    Column("parent_id", String(36), nullable=True),
    Column("author_user_id", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("is_answer", Boolean, nullable=False, server_default=false()),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Column("deleted_by", String(200), nullable=True),
    Column("version", Integer, nullable=False),
    # Moderation (decision 0055): visible, held, hidden or removed; and whether the
    # community was ever shown it (its CommentAdded published).
    Column("moderation", String(16), nullable=False, server_default="visible"),
    Column("shown", Boolean, nullable=False, server_default=true()),
    # A thread reads oldest first; the top feed counts a window of recent comments.
    Index("ix_comments_thread", "post_id", "parent_id", "created_at"),
    Index("ix_comments_recent", "community_id", "created_at"),
    Index("ix_comments_author", "community_id", "author_user_id"),
)

# One row per member, target and kind: the primary key is what makes a reaction count once.
reactions = Table(
    "reactions",
    metadata,
    # The post or comment reacted to.
    Column("target_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("kind", Integer, primary_key=True),
    Column("community_id", String(36), nullable=False),
    # The post, also for a reaction to one of its comments; the comment, or "" for the post.
    Column("post_id", String(36), nullable=False),
    Column("comment_id", String(36), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_reactions_recent", "community_id", "created_at"),
    Index("ix_reactions_member", "community_id", "user_id"),
)

# ---- learning paths ----------------------------------------------------------------------

learning_paths = Table(
    "learning_paths",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    # In order: a list of {"id", "kind", "post_id", "title"}.
    Column("steps", JSON, nullable=False),
    # Ids of paths of the community completed before enrolling (never circular).
    Column("prerequisites", JSON, nullable=False),
    Column("required_product_id", String(200), nullable=False, server_default=""),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False),
    Index("ix_learning_paths_community", "community_id", "created_at"),
    Index("ix_learning_paths_creator", "community_id", "created_by"),
)

# One row per member and path: the steps they have done.
path_enrollments = Table(
    "path_enrollments",
    metadata,
    Column("path_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("community_id", String(36), nullable=False),
    # Ids of the steps done, in the order they were done.
    Column("completed_steps", JSON, nullable=False),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
    Column("last_progress_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False),
    # Who is stuck: enrolled, not completed, idle the longest.
    Index("ix_path_enrollments_idle", "path_id", "completed_at", "last_progress_at"),
    Index("ix_path_enrollments_member", "community_id", "user_id"),
)

# A path aimed at a segment: the snapshot of its members taken then (decision 0015).
path_recommendations = Table(
    "path_recommendations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("path_id", String(36), nullable=False),
    Column("segment_id", String(36), nullable=False),
    Column("recommended_by", String(200), nullable=False),
    Column("recommended_at", DateTime(timezone=True), nullable=False),
    Column("member_count", Integer, nullable=False),
    Index("ix_path_recommendations_path", "community_id", "path_id"),
    Index("ix_path_recommendations_by", "community_id", "recommended_by"),
)

path_recommended_members = Table(
    "path_recommended_members",
    metadata,
    Column("recommendation_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("path_id", String(36), nullable=False),
    Column("recommended_at", DateTime(timezone=True), nullable=False),
    # A member's recommendations, newest first.
    Index("ix_path_recommended_members_member", "community_id", "user_id", "recommended_at"),
)

# ---- resource library --------------------------------------------------------------------

library_resources = Table(
    "library_resources",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("title", String(200), nullable=False),
    Column("url", String(2000), nullable=False),
    # 1 book, 2 course, 3 tool, 4 article, 5 video (ResourceType).
    Column("type", Integer, nullable=False),
    # 1 beginner, 2 intermediate, 3 advanced (ResourceLevel).
    Column("level", Integer, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("review", Text, nullable=False, server_default=""),
    Column("added_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False),
    # Totals of the ratings rows, moved by increments in the rating's transaction (they
    # commute) and so outside the version an edit's etag stands for.
    Column("rating_sum", Integer, nullable=False, server_default="0"),
    Column("rating_count", Integer, nullable=False, server_default="0"),
    Index("ix_library_resources_newest", "community_id", "created_at"),
    Index("ix_library_resources_level", "community_id", "level", "created_at"),
    Index("ix_library_resources_curator", "community_id", "added_by"),
)

# A resource's tags, one row each: browsing by tag reads an index.
library_resource_tags = Table(
    "library_resource_tags",
    metadata,
    Column("resource_id", String(36), primary_key=True),
    Column("tag", String(40), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Index("ix_library_resource_tags_tag", "community_id", "tag"),
)

# One rating per member and resource.
resource_ratings = Table(
    "resource_ratings",
    metadata,
    Column("resource_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("stars", Integer, nullable=False),
    Column("rated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_resource_ratings_member", "community_id", "user_id"),
)

# A member's saved resources.
resource_saves = Table(
    "resource_saves",
    metadata,
    Column("resource_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
    Index("ix_resource_saves_member", "community_id", "user_id", "saved_at"),
)

# ---- recurring themes --------------------------------------------------------------------

# A weekly post from a template; its next occurrence is a job of the scheduler whose key
# names the theme and the occurrence's local date, so each occurrence runs once.
themes = Table(
    "themes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("kind", Integer, nullable=False),
    Column("topic_id", String(36), nullable=True),
    # ISO weekday, 1 Monday ... 7 Sunday; a local time of day "HH:MM[:SS]" in time_zone.
    Column("weekday", Integer, nullable=False),
    Column("local_time", String(8), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("author_user_id", String(200), nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("next_at", DateTime(timezone=True), nullable=True),
    Column("next_local_date", String(10), nullable=False, server_default=""),
    Column("published_count", Integer, nullable=False, server_default="0"),
    Column("last_missed_reason", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_themes_community", "community_id", "created_at"),
    Index("ix_themes_author", "community_id", "author_user_id"),
)

# ---- paid content ------------------------------------------------------------------------

# The projection of billing's entitlements: the newest version of each (decision 0005);
# `end_at` is authoritative, so access ends then without waiting for an event.
entitlements = Table(
    "entitlements",
    metadata,
    Column("entitlement_id", String(200), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("product_id", String(200), nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=True),
    Column("end_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False),
    Index("ix_entitlements_holder", "community_id", "user_id", "product_id"),
)

# Posts readable in full only with an entitlement to a product.
paid_posts = Table(
    "paid_posts",
    metadata,
    Column("post_id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("product_id", String(200), nullable=False),
    Column("set_by", String(200), nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Index("ix_paid_posts_community", "community_id", "product_id"),
)

idempotency_keys = idempotency_table(metadata)
# Facts staged with the change that caused them; the relay publishes them.
outbox = outbox_table(metadata)

inbox = inbox_table(metadata)
# Work due at a time (scheduled publishes), run once by the kit's scheduler.
scheduled_jobs = schedule_table(metadata)
# The projection of members' roles this service authorizes calls with.
access = access_tables(metadata)

# ---- search ------------------------------------------------------------------------------

# What search finds: a post's title, summary and tags ("post"), its body ("body", kept apart
# so a paid post's body never matches for anyone) and each comment ("comment"), as the
# analyzer's terms (services/content/text.py). SQLite mirrors `terms` into the FTS5 table
# `search_fts` by triggers; PostgreSQL indexes a stored `terms_vector`, the terms and the
# document's block term (migrations 0013 and 0017, docs/decisions/0039), not declared here.
search_documents = Table(
    "search_documents",
    metadata,
    # In the order documents were written: search ranks the newest matches (the FTS5 rowid on
    # SQLite, where an INTEGER PRIMARY KEY keeps it through a VACUUM).
    Column(
        "id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    # The post's id for "post", the post's id and ":body" for "body", the comment's id.
    Column("doc_id", String(48), nullable=False),
    Column("post_id", String(36), nullable=False),
    Column("community_id", String(36), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("terms", Text, nullable=False),
    UniqueConstraint("doc_id", name="uq_search_documents_doc"),
    Index("ix_search_documents_post", "post_id"),
)

# ---- views -------------------------------------------------------------------------------

# One row per member, post and local day of the community: the primary key is what makes a
# view count once (INSERT ... ON CONFLICT DO NOTHING), whatever Redis remembers.
post_views = Table(
    "post_views",
    metadata,
    Column("post_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    # YYYY-MM-DD in the community's time zone.
    Column("local_date", String(10), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("viewed_at", DateTime(timezone=True), nullable=False),
    Index("ix_post_views_member", "community_id", "user_id"),
)

# ---- moderation --------------------------------------------------------------------------

# Watched words and phrases: a post or comment holding one is refused (action 1, block), or
# a post holding one is held for review (action 2, hold).
keyword_rules = Table(
    "keyword_rules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("phrase", String(100), nullable=False),
    # The phrase folded (NFKC, case) as texts are before matching: unique in a community.
    Column("phrase_key", String(100), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("action", Integer, nullable=False, server_default="1"),
    UniqueConstraint("community_id", "phrase_key", name="uq_keyword_rules_community_phrase"),
    Index("ix_keyword_rules_community", "community_id", "created_at"),
)

# Where a post stands in moderation (one row once a rule or a moderator acted on it): the
# status mirrors the post's state; the row holds the last decision, the appeal and since when
# the post waits in the review queue (queued_at, null when it does not).
moderation_cases = Table(
    "moderation_cases",
    metadata,
    Column("target_kind", String(16), primary_key=True),
    Column("target_id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("author_user_id", String(200), nullable=False),
    # visible, held, hidden, removed
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor_user_id", String(200), nullable=False),
    # The decider's role (kit Role value) when they decided; 0 for a rule.
    Column("actor_role", Integer, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("appealed", Boolean, nullable=False, server_default=false()),
    Column("appeal_open", Boolean, nullable=False, server_default=false()),
    Column("appeal_statement", Text, nullable=False, server_default=""),
    Column("appealed_at", DateTime(timezone=True), nullable=True),
    Column("queued_at", DateTime(timezone=True), nullable=True),
    Column("version", BigInteger, nullable=False),
    # Members' reports about the post still open (content_reports).
    Column("open_reports", Integer, nullable=False, server_default="0"),
    Index("ix_moderation_cases_queue", "community_id", "queued_at"),
)

# Members' reports about content, from ReportFiled and ReportResolved (the newest version of
# each report wins, whatever order the facts arrive in).
content_reports = Table(
    "content_reports",
    metadata,
    Column("report_id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("target_kind", String(16), nullable=False),
    Column("target_id", String(36), nullable=False),
    # studyhall.members.v1.ReportReason
    Column("reason", Integer, nullable=False),
    Column("open", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=True),
    Index("ix_content_reports_target", "target_id"),
)

# Every moderation step, newest first per community.
moderation_log = Table(
    "moderation_log",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(16), nullable=False),
    Column("target_kind", String(16), nullable=False),
    Column("target_id", String(36), nullable=False),
    Column("actor_user_id", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_moderation_log_community", "community_id", "at"),
)
