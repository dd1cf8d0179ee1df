"""What challenges learn from the bus: members' daily check-ins and content's accepted
answers and finished paths, each turned into a fact that may count towards a member's
challenges (docs/decisions/0045)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.challenges.counting import count
from services.events.challenges.domain import Fact, GoalKind
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from studyhall.content.v1 import content_events_pb2 as content_events
from studyhall.members.v1 import checkins_events_pb2 as checkins_events


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            name="events-challenges-checkins",
            source_service="members",
            event_types=(checkins_events.CheckedIn,),
            apply=apply,
        ),
        Subscription(
            name="events-challenges-content",
            source_service="content",
            event_types=(
                content_events.AnswerAccepted,
                content_events.AnswerUnaccepted,
                content_events.PathCompleted,
            ),
            apply=apply,
        ),
    ]


async def apply(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
    now = datetime.now(UTC)
    for event, envelope in batch:
        fact = fact_of(event, envelope)
        if fact is not None and fact.user_id:
            await count(session, fact, now)


def fact_of(event: Any, envelope: Envelope) -> Fact | None:
    """The fact an event tells, timed by the event's own time where it has one."""
    if isinstance(event, checkins_events.CheckedIn):
        return Fact(
            community_id=event.community_id,
            user_id=event.user_id,
            kind=GoalKind.CHECK_IN_DAYS,
            key=event.local_date or _when(event.checkin_time, envelope).date().isoformat(),
            happened_at=_when(event.checkin_time, envelope),
        )
    if isinstance(event, content_events.AnswerAccepted | content_events.AnswerUnaccepted):
        accepted = isinstance(event, content_events.AnswerAccepted)
        stamp = (
            event.accept_time
            if isinstance(event, content_events.AnswerAccepted)
            else event.unaccept_time
        )
        return Fact(
            community_id=event.community_id,
            user_id=event.answer_author_user_id,
            kind=GoalKind.ACCEPTED_ANSWERS,
            key=event.answer_id,
            happened_at=_when(stamp, envelope),
            counted=accepted,
            version=event.version,
        )
    if isinstance(event, content_events.PathCompleted):
        return Fact(
            community_id=event.community_id,
            user_id=event.user_id,
            kind=GoalKind.PATH_COMPLETED,
            key=event.path_id,
            happened_at=_when(event.complete_time, envelope),
        )
    return None


def _when(stamp: Timestamp, envelope: Envelope) -> datetime:
    if stamp.seconds or stamp.nanos:
        return stamp.ToDatetime(tzinfo=UTC)
    return envelope.time.astimezone(UTC)
