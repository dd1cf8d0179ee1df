"""Analytics' own database: the projections of every stream's facts.

Every table here is written by the event consumers (and by `rebuild`, into a fresh store)
with effects that commute, so events applied in any order give the same rows
(docs/decisions/0005, 0031): counters that add up, "first" dates that keep the minimum,
states that a newer version replaces, and presence rows inserted once.

Days are UTC calendar days (docs/decisions/0031-analytics-rollups.md).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

from services.kit.access import access_tables
from services.kit.events.inbox import inbox_table
from services.kit.events.outbox import outbox_table
from services.kit.idempotency import idempotency_table
from services.kit.schedule import schedule_table

metadata = MetaData()

# One row per community an event has reached: when its figures last changed, and whether
# members archived it. The figures themselves are counted from the tables below.
community_stats = Table(
    "community_stats",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    # CommunityArchived: the figures stay readable, the history is not rewritten.
    Column("archived_at", DateTime(timezone=True), nullable=True),
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

# Counters per community, UTC day and measure ("joined", "posts", "views", ...): added to,
# never replaced, so they commute. A measure is named in services/analytics/facts.py.
daily_counts = Table(
    "daily_counts",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("measure", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# The same counters per UTC hour, for the hours of a busy day.
hourly_counts = Table(
    "hourly_counts",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("measure", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# One row per member and day on which they were active (authored a post, comment or
# reaction, checked in, registered or attended): the exact unique count of DAU/WAU/MAU,
# with what they did that day for top contributors and the longest streak they reported.
member_days = Table(
    "member_days",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("posts", Integer, nullable=False, default=0, server_default="0"),
    Column("comments", Integer, nullable=False, default=0, server_default="0"),
    Column("reactions", Integer, nullable=False, default=0, server_default="0"),
    Column("checkins", Integer, nullable=False, default=0, server_default="0"),
    Column("registrations", Integer, nullable=False, default=0, server_default="0"),
    Column("attendances", Integer, nullable=False, default=0, server_default="0"),
    Column("streak", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_member_days_user", "community_id", "user_id"),
)

# The first day of each step of the funnel per member (the earliest wins, whatever the
# order the facts arrive in); joined_on is the retention cohort.
member_firsts = Table(
    "member_firsts",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("joined_on", Date, nullable=True),
    Column("first_post_on", Date, nullable=True),
    Column("first_registration_on", Date, nullable=True),
    Column("first_payment_on", Date, nullable=True),
)

# Posts as content described them (kind, topic), and for questions when they were asked
# and first answered. A row may exist before its PostCreated (a view or an answer came
# first): kind 0 until it arrives.
posts = Table(
    "posts",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("post_id", String(36), primary_key=True),
    Column("kind", Integer, nullable=False, default=0, server_default="0"),
    Column("topic_id", String(36), nullable=False, default="", server_default=""),
    Column("author_user_id", String(200), nullable=False, default="", server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=True),
    Column("first_answer_at", DateTime(timezone=True), nullable=True),
)

# Reads and engagement per post and day (views, comments, reactions).
post_days = Table(
    "post_days",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("post_id", String(36), primary_key=True),
    Column("views", BigInteger, nullable=False, default=0, server_default="0"),
    Column("comments", BigInteger, nullable=False, default=0, server_default="0"),
    Column("reactions", BigInteger, nullable=False, default=0, server_default="0"),
)

# Activities and registrations as events described them, the newest version winning.
activities = Table(
    "activities",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("activity_id", String(36), primary_key=True),
    Column("kind", Integer, nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=True),
    Column("cancelled", Boolean, nullable=False, default=False, server_default=false()),
    Column("version", BigInteger, nullable=False),
)

registrations = Table(
    "registrations",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("registration_id", String(36), primary_key=True),
    Column("activity_id", String(36), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("state", String(16), nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_registrations_activity", "community_id", "activity_id"),
)

# Subscriptions as billing described them, the newest version winning: who pays, and what.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("subscription_id", String(36), primary_key=True),
    Column("user_id", String(200), nullable=False),
    Column("state", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
)

# Billing's MrrMoved per day, currency and kind of move: the sum of amounts up to a day is
# the MRR on that day.
mrr_days = Table(
    "mrr_days",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("kind", Integer, primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("moves", BigInteger, nullable=False),
)

# Erased members: a digest of (community, user id) and the pseudonym their rows carry now.
# Every fact is mapped through it before it is written, live and in a rebuild, so a replay
# never brings an identity back (docs/decisions/0033-erasure-by-pseudonym.md).
tombstones = Table(
    "tombstones",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_digest", String(64), primary_key=True),
    Column("pseudonym", String(200), nullable=False),
)

# Activities' FeedbackSubmitted, the newest version of each feedback winning: the activity
# side of the satisfaction trend.
feedback = Table(
    "feedback",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("feedback_id", String(36), primary_key=True),
    Column("user_id", String(200), nullable=False),
    Column("overall_rating", Integer, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("version", BigInteger, nullable=False),
)

# Each community's topic as members describes it (lowercased), the newest version winning:
# the peers of a benchmark.
community_topics = Table(
    "community_topics",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("topic", String(200), nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_community_topics_topic", "topic"),
)

# -- records analytics owns (written by its RPCs and its sweep, not projections: a rebuild
# leaves them alone; docs/decisions/0048) ------------------------------------------------------

# Surveys admins define; the questions are a JSON list (services/analytics/surveys/domain.py).
surveys = Table(
    "surveys",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("survey_id", String(36), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("questions", Text, nullable=False),
    Column("segment_id", String(36), nullable=False, default="", server_default=""),
    Column("recipient_count", Integer, nullable=False, default=0, server_default="0"),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("answer_count", Integer, nullable=False, default=0, server_default="0"),
    Column("version", BigInteger, nullable=False),
    Index("ix_surveys_created", "community_id", "created_at"),
)

# The members a segment survey was sent to: the snapshot taken when it opened.
survey_recipients = Table(
    "survey_recipients",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("survey_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
)

# One row per member and survey answered (the key makes "once" hold under concurrency);
# the answers are a JSON object by question key. Erasure renames the member to their
# pseudonym and blanks free text: the figures stay, the person goes.
survey_answers = Table(
    "survey_answers",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("survey_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("answers", Text, nullable=False),
    Column("answered_at", DateTime(timezone=True), nullable=False),
    Index("ix_survey_answers_user", "community_id", "user_id"),
)

# What the daily churn sweep last judged each member (services/analytics/engagement/).
churn_risks = Table(
    "churn_risks",
    metadata,
    Column("community_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("risk", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("previous_score", Float, nullable=False),
    Column("last_active_on", Date, nullable=True),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("swept_on", Date, nullable=False),
    Column("version", BigInteger, nullable=False),
    Index("ix_churn_risks_risk", "community_id", "risk"),
)

inbox = inbox_table(metadata)
# Survey events and ChurnRiskChanged, staged with the write that causes them.
outbox = outbox_table(metadata)
# The daily churn sweep of each community (services/kit/schedule.py).
scheduled_jobs = schedule_table(metadata)
# The writing RPCs: EraseMyData and the surveys'.
idempotency_keys = idempotency_table(metadata)
# The projection of members' roles this service authorizes calls with.
access = access_tables(metadata)
