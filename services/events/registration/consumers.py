"""What registration learns from members' facts: a member who leaves, is removed or is
banned gives up their seats and places in activities still ahead, with the reason
"member left", and the seats go to the waitlist (docs/decisions/0030)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.registration import seats
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from studyhall.members.v1 import members_events_pb2 as members_events

GONE = (members_events.MemberLeft, members_events.MemberRemoved, members_events.MemberBanned)


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            name="events-registration-departures",
            source_service="members",
            event_types=GONE,
            apply=apply,
        )
    ]


async def apply(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
    """A redelivered fact finds nothing left to cancel; a late one spares registrations
    made after the member left, so a member who joined again and registered keeps it."""
    now = datetime.now(UTC)
    for event, envelope in batch:
        await seats.member_left(
            session, event.community_id, event.user_id, _left_at(event, envelope), now
        )


def _left_at(event: Any, envelope: Envelope) -> datetime:
    if isinstance(event, members_events.MemberLeft) and event.HasField("leave_time"):
        return event.leave_time.ToDatetime(tzinfo=UTC)
    return envelope.time
