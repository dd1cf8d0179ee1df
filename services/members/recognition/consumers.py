"""Points from the facts of the backbone: content's posts, accepted answers and completed
paths, activities' attendance and challenges, members' check-ins and joins,
through the rule table in `points.py`. The CloudEvent id is the ledger's source id, so a
redelivered fact never awards twice (the inbox catches it first, the ledger's unique key
second)."""

from __future__ import annotations

import asyncio
import zoneinfo
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from services.members.recognition.awards import land_many
from services.members.recognition.leaderboards import BoardEntry, Leaderboards
from services.members.recognition.points import RULES, Award, reward, source_id
from services.members.recognition.store import LedgerRepository
from studyhall.content.v1 import content_events_pb2 as content_events
from studyhall.events.v1 import activities_events_pb2 as activities_events
from studyhall.members.v1 import checkins_events_pb2 as checkins_events
from studyhall.members.v1 import members_events_pb2 as members_events

# The fact's own time, where it has one: the ledger's day is the day it happened.
_TIMES = (
    "create_time",
    "checkin_time",
    "join_time",
    "accept_time",
    "unaccept_time",
    "complete_time",
    "record_time",
)


def _when(event: Any, envelope: Envelope) -> datetime:
    for name in _TIMES:
        if name in event.DESCRIPTOR.fields_by_name and event.HasField(name):
            return getattr(event, name).ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
    return envelope.time.astimezone(UTC)


class PointsFromFacts:
    """The durable consumers that turn facts into points, and hand what landed to the
    leaderboards once the consumer's transaction commits."""

    def __init__(self, boards: Leaderboards) -> None:
        self.boards = boards
        self._tasks: set[asyncio.Task[None]] = set()

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription(
                name="members-recognition-content",
                source_service="content",
                event_types=(
                    content_events.PostCreated,
                    content_events.AnswerAccepted,
                    content_events.AnswerUnaccepted,
                    content_events.PathCompleted,
                ),
                apply=self.apply,
            ),
            Subscription(
                name="members-recognition-activities",
                source_service="events",
                event_types=(
                    activities_events.AttendanceRecorded,
                    activities_events.ChallengeCompleted,
                ),
                apply=self.apply,
            ),
            Subscription(
                name="members-recognition-members",
                source_service="members",
                event_types=(members_events.MemberJoined, checkins_events.CheckedIn),
                apply=self.apply,
            ),
        ]

    async def apply(self, session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
        ledger = LedgerRepository(session)
        facts = [
            (event, envelope, rule, str(getattr(event, rule.recipient)))
            for event, envelope in batch
            if (rule := RULES.get(envelope.type)) is not None
        ]
        # Points belong to members: a fact about someone who left (or never joined) earns
        # nothing, and is not an error either.
        members = await ledger.active_members(
            {(event.community_id, user) for event, *_, user in facts}
        )
        awards: list[Award] = []
        # Facts that earn nothing only move last activity forward: one statement for the batch.
        activity: dict[tuple[str, str], datetime] = {}
        for event, envelope, rule, user_id in facts:
            key = (event.community_id, user_id)
            if key not in members:
                continue
            at = _when(event, envelope)
            amount = reward(rule, getattr(event, rule.amount_field) if rule.amount_field else 0)
            if amount == 0:
                activity[key] = max(at, activity.get(key, at))
                continue
            awards.append(
                Award(
                    community_id=event.community_id,
                    user_id=user_id,
                    amount=amount,
                    reason=rule.reason,
                    source_event_id=source_id(rule, event, envelope.id),
                    created_at=at,
                    streak_days=getattr(event, "streak_days", 0),
                )
            )
        entries: list[BoardEntry] = []
        zones: dict[str, zoneinfo.ZoneInfo] = {}
        for landed in await land_many(session, awards, ledger):
            if landed is not None:
                entry = landed.entry
                award = entry.award
                entries.append(
                    BoardEntry(
                        award.community_id, entry.id, award.user_id, award.amount, entry.local_date
                    )
                )
                zones[award.community_id] = await ledger.zone(award.community_id)
        await ledger.mark_all_active(activity)
        if entries:
            self._after_commit(session, entries, zones)

    def _after_commit(
        self,
        session: AsyncSession,
        entries: list[BoardEntry],
        zones: dict[str, zoneinfo.ZoneInfo],
    ) -> None:
        def committed(_session: Any) -> None:
            task = asyncio.get_running_loop().create_task(self.boards.record(entries, zones))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        orm_event.listen(session.sync_session, "after_commit", committed, once=True)

    async def drain(self) -> None:
        """Wait for board writes in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
