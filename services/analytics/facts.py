"""What each event means for analytics, as effects on the rollups: rules only, no I/O.

`FACTS` maps each event type analytics reads to the function that turns one event into
effects; a new event type plugs in with one line there (and, when it needs a new kind of
effect, one field of `Effects`). The consumers (consumers.py) and `rebuild` read the same
table, so a live projection and a replay cannot disagree on what an event means.

Every effect commutes (counters add, "first" dates keep the minimum, streaks keep the
maximum, states keep the newest version), so a batch's effects can be merged in memory and
written in a few statements, and events in any order give the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.kit.events.envelope import Envelope
from studyhall.billing.v1 import billing_events_pb2 as billing
from studyhall.content.v1 import content_events_pb2 as content
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.events.v1 import activities_events_pb2 as activities
from studyhall.members.v1 import checkins_events_pb2 as checkins
from studyhall.members.v1 import members_events_pb2 as members

# What a member did on a day (columns of member_days); any of them makes the day active.
DEEDS = ("posts", "comments", "reactions", "checkins", "registrations", "attendances")
# The funnel's steps after joining (columns of member_firsts).
FIRSTS = ("joined_on", "first_post_on", "first_registration_on", "first_payment_on")

QUESTION = content_pb.POST_KIND_QUESTION

Key = tuple[str, str]  # (community_id, user_id)


@dataclass
class Effects:
    """The effects of a batch of events, merged: what the store writes in one transaction."""

    touched: dict[str, datetime] = field(default_factory=dict)  # community -> latest event
    counts: Counter[tuple[str, date, str]] = field(default_factory=Counter)
    hours: Counter[tuple[str, datetime, str]] = field(default_factory=Counter)
    deeds: dict[tuple[str, date, str], Counter[str]] = field(default_factory=dict)
    streaks: dict[tuple[str, date, str], int] = field(default_factory=dict)
    firsts: dict[Key, dict[str, date]] = field(default_factory=dict)
    states: list[dict[str, Any]] = field(default_factory=list)  # member_states
    posts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    answers: dict[tuple[str, str], datetime] = field(default_factory=dict)
    post_days: dict[tuple[str, date, str], Counter[str]] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)
    registrations: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    mrr: dict[tuple[str, date, str, int], list[int]] = field(default_factory=dict)
    archived: dict[str, datetime] = field(default_factory=dict)
    feedback: list[dict[str, Any]] = field(default_factory=list)  # FeedbackSubmitted
    topics: list[dict[str, Any]] = field(default_factory=list)  # community_topics
    # MemberErased: written after the rest of the batch, so it renames what came before.
    erased: list[Key] = field(default_factory=list)

    # -- what the fact functions call ------------------------------------------------------

    def count(self, community_id: str, at: datetime, measure: str, amount: int = 1) -> None:
        self.counts[(community_id, at.date(), measure)] += amount
        hour = at.replace(minute=0, second=0, microsecond=0)
        self.hours[(community_id, hour, measure)] += amount

    def deed(self, community_id: str, at: datetime, user_id: str, what: str) -> None:
        """`user_id` did `what` (one of DEEDS) on the day of `at`: an active day."""
        key = (community_id, at.date(), user_id)
        deeds = self.deeds.get(key)
        # Not setdefault: a Counter built on every call was about 5 % of a replay's CPU.
        if deeds is None:
            deeds = self.deeds[key] = Counter()
        deeds[what] += 1

    def streak(self, community_id: str, at: datetime, user_id: str, days: int) -> None:
        key = (community_id, at.date(), user_id)
        self.streaks[key] = max(self.streaks.get(key, 0), days)

    def first(self, community_id: str, user_id: str, step: str, at: datetime) -> None:
        steps = self.firsts.setdefault((community_id, user_id), {})
        day = at.date()
        if step not in steps or day < steps[step]:
            steps[step] = day

    def post_day(self, community_id: str, at: datetime, post_id: str, what: str) -> None:
        if post_id:
            key = (community_id, at.date(), post_id)
            counts = self.post_days.get(key)
            if counts is None:
                counts = self.post_days[key] = Counter()
            counts[what] += 1

    # -- identities -------------------------------------------------------------------------

    def users(self) -> set[Key]:
        """Every (community, user) the effects name: what erasure may have to rename."""
        named: set[Key] = {(c, u) for c, _, u in self.deeds} | set(self.firsts)
        named |= {(c, u) for c, _, u in self.streaks}
        for rows in (self.states, self.registrations, self.subscriptions, self.feedback):
            named |= {(row["community_id"], row["user_id"]) for row in rows}
        named |= {(c, row["author_user_id"]) for (c, _), row in self.posts.items()}
        return {(c, u) for c, u in named if u}

    def rename(self, pseudonyms: dict[Key, str]) -> None:
        """Replace erased members' ids by their pseudonyms, everywhere the effects name one."""
        if not pseudonyms:
            return

        def user(community_id: str, user_id: str) -> str:
            return pseudonyms.get((community_id, user_id), user_id)

        self.deeds = _merge_counters(((c, d, user(c, u)), v) for (c, d, u), v in self.deeds.items())
        streaks: dict[tuple[str, date, str], int] = {}
        for (c, d, u), days in self.streaks.items():
            key = (c, d, user(c, u))
            streaks[key] = max(streaks.get(key, 0), days)
        self.streaks = streaks
        firsts: dict[Key, dict[str, date]] = {}
        for (c, u), steps in self.firsts.items():
            merged = firsts.setdefault((c, user(c, u)), {})
            for step, day in steps.items():
                if step not in merged or day < merged[step]:
                    merged[step] = day
        self.firsts = firsts
        for rows in (self.states, self.registrations, self.subscriptions, self.feedback):
            for row in rows:
                row["user_id"] = user(row["community_id"], row["user_id"])
        for (c, _), row in self.posts.items():
            row["author_user_id"] = user(c, row["author_user_id"])


def _merge_counters(
    items: Iterable[tuple[tuple[str, date, str], Counter[str]]],
) -> dict[tuple[str, date, str], Counter[str]]:
    merged: dict[tuple[str, date, str], Counter[str]] = {}
    for key, counter in items:
        merged.setdefault(key, Counter()).update(counter)
    return merged


def time_of(stamp: Timestamp, envelope: Envelope) -> datetime:
    """When the fact happened: the event's own time when it carries one, else when it was
    published (both UTC)."""
    if stamp.seconds or stamp.nanos:
        return stamp.ToDatetime(tzinfo=UTC)
    return envelope.time.astimezone(UTC)


# -- members ----------------------------------------------------------------------------------


def _community_topic(e: Any, env: Envelope, fx: Effects) -> None:
    """The community's topic, the peers of its benchmarks (effects_of notes every community
    an event reaches)."""
    fx.topics.append(
        {"community_id": e.community_id, "topic": topic_of(e.topic), "version": e.version}
    )


def topic_of(text: str) -> str:
    """Communities share a topic when the words match, whatever the case and spacing."""
    return " ".join(text.lower().split())[:200]


def _joined(e: members.MemberJoined, env: Envelope, fx: Effects) -> None:
    at = time_of(e.join_time, env)
    fx.count(e.community_id, at, "joined")
    fx.first(e.community_id, e.user_id, "joined_on", at)
    fx.states.append(_state(e, active=True))


def _departed(at: Callable[[Any], Timestamp]) -> Callable[[Any, Envelope, Effects], None]:
    """Leaving, removal and a ban: the member no longer counts; counted as "left"."""

    def apply(e: Any, env: Envelope, fx: Effects) -> None:
        fx.count(e.community_id, time_of(at(e), env), "left")
        fx.states.append(_state(e, active=False))

    return apply


def _state(e: Any, *, active: bool) -> dict[str, Any]:
    return {
        "community_id": e.community_id,
        "user_id": e.user_id,
        "active": active,
        "version": e.version,
    }


def _archived(e: members.CommunityArchived, env: Envelope, fx: Effects) -> None:
    # The earliest wins, as the store keeps it (rollups.py): whatever the batches' cuts.
    at = time_of(e.archive_time, env)
    fx.archived[e.community_id] = min(at, fx.archived.get(e.community_id, at))


def _erased(e: members.MemberErased, env: Envelope, fx: Effects) -> None:
    fx.erased.append((e.community_id, e.user_id))


def _checked_in(e: checkins.CheckedIn, env: Envelope, fx: Effects) -> None:
    at = time_of(e.checkin_time, env)
    fx.count(e.community_id, at, "checkins")
    fx.deed(e.community_id, at, e.user_id, "checkins")
    fx.streak(e.community_id, at, e.user_id, e.streak_days)


# -- content ----------------------------------------------------------------------------------


def _post_created(e: content.PostCreated, env: Envelope, fx: Effects) -> None:
    at = time_of(e.create_time, env)
    fx.count(e.community_id, at, "posts")
    if e.kind == QUESTION:
        fx.count(e.community_id, at, "questions")
    fx.deed(e.community_id, at, e.author_user_id, "posts")
    fx.first(e.community_id, e.author_user_id, "first_post_on", at)
    fx.posts[(e.community_id, e.post_id)] = {
        "community_id": e.community_id,
        "post_id": e.post_id,
        "kind": int(e.kind),
        "topic_id": e.topic_id,
        "author_user_id": e.author_user_id,
        "created_at": at,
    }


def _comment_added(e: content.CommentAdded, env: Envelope, fx: Effects) -> None:
    at = time_of(e.create_time, env)
    fx.count(e.community_id, at, "comments")
    fx.deed(e.community_id, at, e.author_user_id, "comments")
    fx.post_day(e.community_id, at, e.post_id, "comments")
    if e.is_answer:
        fx.count(e.community_id, at, "answers")
        key = (e.community_id, e.post_id)
        fx.answers[key] = min(at, fx.answers.get(key, at))


def _reaction_added(e: content.ReactionAdded, env: Envelope, fx: Effects) -> None:
    at = time_of(e.react_time, env)
    fx.count(e.community_id, at, "reactions")
    fx.deed(e.community_id, at, e.user_id, "reactions")
    fx.post_day(e.community_id, at, e.post_id, "reactions")


def _viewed(e: content.ContentViewed, env: Envelope, fx: Effects) -> None:
    at = time_of(e.view_time, env)
    fx.count(e.community_id, at, "views")
    fx.post_day(e.community_id, at, e.post_id, "views")


# -- activities (the events service) ----------------------------------------------------------


def _activity(*, cancelled: bool) -> Callable[[Any, Envelope, Effects], None]:
    def apply(e: Any, env: Envelope, fx: Effects) -> None:
        if isinstance(e, activities.ActivityCreated):
            fx.count(e.community_id, time_of(e.create_time, env), "activities")
        fx.activities.append(
            {
                "community_id": e.community_id,
                "activity_id": e.activity_id,
                "kind": int(e.kind),
                "start_time": e.start_time.ToDatetime(tzinfo=UTC)
                if e.HasField("start_time")
                else None,
                "cancelled": cancelled,
                "version": e.version,
            }
        )

    return apply


def _registration(
    state: str, at: Callable[[Any], Timestamp], deed: str | None
) -> Callable[[Any, Envelope, Effects], None]:
    """A registration's new state; `deed`: what it counts as for the member that day."""

    def apply(e: Any, env: Envelope, fx: Effects) -> None:
        when = time_of(at(e), env)
        fx.registrations.append(
            {
                "community_id": e.community_id,
                "registration_id": e.registration_id,
                "activity_id": e.activity_id,
                "user_id": e.user_id,
                "state": state,
                "version": e.version,
            }
        )
        if deed is not None:
            fx.count(e.community_id, when, deed)
            fx.deed(e.community_id, when, e.user_id, deed)
        if deed == "registrations":
            fx.first(e.community_id, e.user_id, "first_registration_on", when)

    return apply


def _feedback(e: activities.FeedbackSubmitted, env: Envelope, fx: Effects) -> None:
    fx.feedback.append(
        {
            "community_id": e.community_id,
            "feedback_id": e.feedback_id,
            "user_id": e.user_id,
            "overall_rating": e.overall_rating,
            "submitted_at": time_of(e.submit_time, env),
            "version": e.version,
        }
    )


# -- billing ----------------------------------------------------------------------------------


def _checkout(e: billing.CheckoutCompleted, env: Envelope, fx: Effects) -> None:
    at = time_of(e.complete_time, env)
    fx.count(e.community_id, at, "checkouts")
    fx.first(e.community_id, e.user_id, "first_payment_on", at)


def _subscription(e: billing.SubscriptionChanged, env: Envelope, fx: Effects) -> None:
    fx.subscriptions.append(
        {
            "community_id": e.community_id,
            "subscription_id": e.subscription_id,
            "user_id": e.user_id,
            "state": int(e.state),
            "currency": e.price.currency,
            "price_minor": e.price.amount_minor,
            "version": e.version,
        }
    )


def _mrr_moved(e: billing.MrrMoved, env: Envelope, fx: Effects) -> None:
    at = time_of(e.move_time, env)
    key = (e.community_id, at.date(), e.currency, int(e.kind))
    amount_and_moves = fx.mrr.setdefault(key, [0, 0])
    amount_and_moves[0] += e.amount_minor
    amount_and_moves[1] += 1


# -- the table --------------------------------------------------------------------------------

Fact = Callable[[Any, Envelope, Effects], None]

FACTS: dict[type[Message], Fact] = {
    members.CommunityCreated: _community_topic,
    members.CommunityUpdated: _community_topic,
    members.MemberJoined: _joined,
    members.MemberLeft: _departed(lambda e: e.leave_time),
    members.MemberRemoved: _departed(lambda e: Timestamp()),
    members.MemberBanned: _departed(lambda e: Timestamp()),
    members.CommunityArchived: _archived,
    members.MemberErased: _erased,
    checkins.CheckedIn: _checked_in,
    content.PostCreated: _post_created,
    content.CommentAdded: _comment_added,
    content.ReactionAdded: _reaction_added,
    content.ContentViewed: _viewed,
    activities.ActivityCreated: _activity(cancelled=False),
    activities.ActivityUpdated: _activity(cancelled=False),
    activities.ActivityCancelled: _activity(cancelled=True),
    activities.Registered: _registration("registered", lambda e: e.register_time, "registrations"),
    activities.Waitlisted: _registration("waitlisted", lambda e: e.waitlist_time, "registrations"),
    activities.Promoted: _registration("registered", lambda e: e.promote_time, None),
    activities.RegistrationCancelled: _registration("cancelled", lambda e: e.cancel_time, None),
    activities.AttendanceRecorded: _registration(
        "attended", lambda e: e.record_time, "attendances"
    ),
    activities.NoShowRecorded: _registration("no_show", lambda e: e.record_time, None),
    activities.FeedbackSubmitted: _feedback,
    billing.CheckoutCompleted: _checkout,
    billing.SubscriptionChanged: _subscription,
    billing.MrrMoved: _mrr_moved,
}


def source_service(event_type: type[Message]) -> str:
    """The service whose stream carries the event: its proto package
    (`studyhall.<service>.v1`)."""
    return event_type.DESCRIPTOR.full_name.split(".")[1]


def effects_of(batch: Iterable[tuple[Any, Envelope]]) -> Effects:
    effects = Effects()
    for event, envelope in batch:
        FACTS[type(event)](event, envelope, effects)
        community = event.community_id
        at = envelope.time.astimezone(UTC)
        if community not in effects.touched or effects.touched[community] < at:
            effects.touched[community] = at
    return effects
