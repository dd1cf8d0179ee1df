from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.kit.access import access_tables
from services.kit.events.inbox import inbox_table
from services.kit.events.outbox import outbox_table
from services.kit.idempotency import idempotency_table
from services.kit.schedule import schedule_table

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
    Column("time_zone", String(64), nullable=False, server_default=""),
    Column("join_url", String(2000), nullable=False, server_default=""),
    Column("speaker_user_ids", JSON, nullable=True),
    # 1 the community, 2 members only (ActivityVisibility).
    Column("visibility", Integer, nullable=False, server_default="1"),
    # 1 scheduled, 2 cancelled (ActivityState).
    Column("state", Integer, nullable=False, server_default="1"),
    Column("cancel_reason", Text, nullable=False, server_default=""),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    # Reminder lead times in seconds; registration questions as [{id, text, required}].
    Column("reminder_offsets", JSON, nullable=True),
    Column("questions", JSON, nullable=True),
    Column("seat_hold_seconds", Integer, nullable=False, server_default="86400"),
    # Counters kept with the activity, changed by one conditional statement each, so the
    # capacity holds under concurrent registrations (docs/decisions/0027).
    Column("seats_taken", Integer, nullable=False, server_default="0"),
    Column("waitlist_length", Integer, nullable=False, server_default="0"),
    # The last waitlist ticket handed out: first come, first promoted.
    Column("waitlist_tickets", Integer, nullable=False, server_default="0"),
    Column("check_in_code", String(16), nullable=False, server_default=""),
    Column("retrospective", Text, nullable=False, server_default=""),
    # A series: its id, rule ({"frequency", "count"}) and the start the rule gave this one.
    Column("series_id", String(36), nullable=True),
    Column("recurrence", JSON, nullable=True),
    Column("occurrence_time", DateTime(timezone=True), nullable=True),
    # The end, or when an open-ended one is taken to end: upcoming and past split on it.
    Column("ends_at", DateTime(timezone=True), nullable=True),
    # The billing product (an event ticket) a seat is paid with; empty: free.
    Column("ticket_product_id", String(36), nullable=False, server_default=""),
    # A community's calendar reads its activities by start time.
    Index("ix_activities_community_start", "community_id", "start_time"),
    # The activities a member hosts, for their export and erasure.
    Index("ix_activities_community_host", "community_id", "host_user_id"),
    Index("ix_activities_series", "series_id"),
    Index("ix_activities_community_ends", "community_id", "ends_at"),
)

# One per member and activity: registering again after cancelling reuses it.
registrations = Table(
    "registrations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("activity_id", String(36), nullable=False),
    Column("community_id", String(36), nullable=False),
    # Null once the member erased their data: the registration still counts.
    Column("user_id", String(200), nullable=True),
    # RegistrationState: 1 seated, 2 held, 3 waitlisted, 4 cancelled.
    Column("state", Integer, nullable=False),
    # Attendance: 0 not recorded, 1 attended, 2 no-show.
    Column("attendance", Integer, nullable=False, server_default="0"),
    Column("waitlist_ticket", Integer, nullable=True),
    Column("hold_until", DateTime(timezone=True), nullable=True),
    Column("answers", JSON, nullable=True),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint("activity_id", "user_id", name="uq_registrations_activity_user"),
    Index("ix_registrations_waitlist", "activity_id", "state", "waitlist_ticket"),
    Index("ix_registrations_member", "community_id", "user_id"),
)

# One per attendee and activity: submitting again replaces it.
feedback = Table(
    "feedback",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("activity_id", String(36), nullable=False),
    Column("community_id", String(36), nullable=False),
    Column("user_id", String(200), nullable=True),
    Column("rating", Integer, nullable=False),
    Column("would_recommend", Integer, nullable=True),
    Column("comment", Text, nullable=False, server_default=""),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint("activity_id", "user_id", name="uq_feedback_activity_user"),
    Index("ix_feedback_member", "community_id", "user_id"),
)

# A challenge's goal and reward: one per activity of kind challenge.
challenges = Table(
    "challenges",
    metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    # ChallengeGoalKind: 1 check-in days, 2 a path completed, 3 accepted answers.
    Column("goal_kind", Integer, nullable=False),
    Column("target", Integer, nullable=False),
    Column("path_id", String(36), nullable=False, server_default=""),
    Column("reward_points", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The challenges a fact of a community may count towards.
    Index("ix_challenges_community_kind", "community_id", "goal_kind"),
)

# What counted towards a member's challenge, one row per day checked in, answer or path:
# a redelivered fact finds its row, a late one adds it, whatever the order.
challenge_facts = Table(
    "challenge_facts",
    metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    # The local date of a check-in, an answer's id, a path's id.
    Column("fact_key", String(200), primary_key=True),
    Column("community_id", String(36), nullable=False),
    # 0 once an accepted answer was unaccepted (a newer version of the same answer).
    Column("counted", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("happened_at", DateTime(timezone=True), nullable=False),
    Index("ix_challenge_facts_member", "community_id", "user_id"),
)

# A member's progress in a challenge, recounted from challenge_facts; completed once.
challenge_progress = Table(
    "challenge_progress",
    metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("progress", Integer, nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_challenge_progress_board", "activity_id", "progress"),
    Index("ix_challenge_progress_member", "community_id", "user_id"),
)

# A segment invited to an activity, and the snapshot of its members (decision 0015).
activity_invitations = Table(
    "activity_invitations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("activity_id", String(36), nullable=False),
    Column("community_id", String(36), nullable=False),
    Column("segment_id", String(36), nullable=False),
    Column("invited_by_user_id", String(200), nullable=False),
    Column("member_count", Integer, nullable=False),
    Column("invited_at", DateTime(timezone=True), nullable=False),
    Index("ix_activity_invitations_activity", "activity_id"),
)

activity_invitees = Table(
    "activity_invitees",
    metadata,
    Column("invitation_id", String(36), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("activity_id", String(36), nullable=False),
    Column("community_id", String(36), nullable=False),
    # A member's invitations, for their activities, export and erasure.
    Index("ix_activity_invitees_member", "community_id", "user_id"),
)

# Events' projection of billing's entitlements to event tickets: a member entitled to an
# activity's ticket product gets a seat, not a hold (newest version wins).
ticket_entitlements = Table(
    "ticket_entitlements",
    metadata,
    Column("entitlement_id", String(36), primary_key=True),
    Column("community_id", String(36), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("product_id", String(36), nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=True),
    Column("end_time", DateTime(timezone=True), nullable=True),
    # 1 granted, 0 revoked.
    Column("active", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_ticket_entitlements_member", "community_id", "user_id", "product_id"),
)

idempotency_keys = idempotency_table(metadata)
# Facts staged with the change that caused them; the relay publishes them.
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
# Work due at a time (held seats, reminders, no-shows), run once by the kit's scheduler.
scheduled_jobs = schedule_table(metadata)
# The projection of members' roles this service authorizes calls with.
access = access_tables(metadata)
