"""What analytics does with the facts other services publish."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.store.repository import StatsRepository
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from studyhall.members.v1 import members_events_pb2 as members_events

_ARRIVALS = (members_events.MemberJoined,)
_DEPARTURES = (members_events.MemberLeft, members_events.MemberRemoved, members_events.MemberBanned)


async def apply_membership_facts(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
    """A batch of members' events in two statements: the membership states it carries
    (newest version wins, whatever the order) and the communities it touched."""
    states: list[dict[str, Any]] = []
    touched: set[str] = set()
    for event, _envelope in batch:
        touched.add(event.community_id)
        if isinstance(event, _ARRIVALS + _DEPARTURES):
            states.append(
                {
                    "community_id": event.community_id,
                    "user_id": event.user_id,
                    "active": isinstance(event, _ARRIVALS),
                    "version": event.version,
                }
            )
    stats = StatsRepository(session)
    await stats.set_member_states(states)
    await stats.touch(touched)


MEMBERS = Subscription(
    name="analytics-members",
    source_service="members",
    event_types=(members_events.CommunityCreated, *_ARRIVALS, *_DEPARTURES),
    apply=apply_membership_facts,
)
