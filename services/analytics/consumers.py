"""What analytics does with the facts other services publish."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.store.repository import StatsRepository
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from studyhall.members.v1 import members_events_pb2 as members_events


async def community_created(
    session: AsyncSession, event: members_events.CommunityCreated, envelope: Envelope
) -> None:
    await StatsRepository(session).touch(event.community_id)


async def member_joined(
    session: AsyncSession, event: members_events.MemberJoined, envelope: Envelope
) -> None:
    stats = StatsRepository(session)
    if await stats.set_member_state(
        event.community_id, event.user_id, active=True, version=event.version
    ):
        await stats.touch(event.community_id)


async def member_left(
    session: AsyncSession,
    event: members_events.MemberLeft | members_events.MemberRemoved | members_events.MemberBanned,
    envelope: Envelope,
) -> None:
    stats = StatsRepository(session)
    if await stats.set_member_state(
        event.community_id, event.user_id, active=False, version=event.version
    ):
        await stats.touch(event.community_id)


MEMBERS = Subscription(
    name="analytics-members",
    source_service="members",
    handlers={
        members_events.CommunityCreated: community_created,
        members_events.MemberJoined: member_joined,
        members_events.MemberLeft: member_left,
        members_events.MemberRemoved: member_left,
        members_events.MemberBanned: member_left,
    },
)
