"""A member who leaves, is removed or is banned gives up their registrations in activities
still ahead, with the reason "member left": the seat goes to the first waiting, held for
them. Members' facts reach events through the real bus; an activity that has started keeps
the registration."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from services.events.app import SPEC as EVENTS
from services.events.settings import EventsSettings
from services.events.store.tables import outbox
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.events.v1 import activities_events_pb2 as events_pb
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.support.services import RunningService, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

SEATED, HELD, WAITLISTED, CANCELLED = (
    pb.REGISTRATION_STATE_SEATED,
    pb.REGISTRATION_STATE_HELD,
    pb.REGISTRATION_STATE_WAITLISTED,
    pb.REGISTRATION_STATE_CANCELLED,
)


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class Club:
    """A community in members, as events sees it through members' facts."""

    def __init__(self, members: RunningService, events: RunningService, community_id: str):
        self.members, self.events, self.id = members, events, community_id
        self.club = members_grpc.MembersServiceStub(members.channel)
        self.activities = pb_grpc.ActivitiesServiceStub(events.channel)

    async def plan(self, capacity: int, start: datetime) -> str:
        made = await self.activities.CreateActivity(
            pb.CreateActivityRequest(
                community_id=self.id,
                kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP,
                title="Pronunciation clinic",
                location="Room 2",
                capacity=capacity,
                start_time=_at(start),
                end_time=_at(start + timedelta(hours=1)),
            ),
            metadata=self.events.auth("owner"),
        )
        return str(made.activity.id)

    async def register(self, activity_id: str, user: str) -> None:
        await self.activities.Register(
            pb.RegisterRequest(community_id=self.id, activity_id=activity_id),
            metadata=self.events.auth(user),
        )

    async def states(self, activity_id: str) -> dict[str, int]:
        listed = await self.activities.ListRegistrations(
            pb.ListRegistrationsRequest(community_id=self.id, activity_id=activity_id),
            metadata=self.events.auth("owner"),
        )
        return {r.user_id: r.state for r in listed.registrations}

    async def moderate(self, user: str, action: Any) -> None:
        await self.club.ModerateMember(
            members_pb.ModerateMemberRequest(
                community_id=self.id, user_id=user, action=action, reason="Spam in every thread"
            ),
            metadata=self.members.auth("owner"),
        )

    async def facts(self, kind: Any) -> list[Any]:
        async with self.events.deps.database.read() as session:
            rows = await session.scalars(
                select(outbox.c.payload)
                .where(
                    outbox.c.community_id == self.id,
                    outbox.c.event_type == kind.DESCRIPTOR.full_name,
                )
                .order_by(outbox.c.seq)
            )
            return [kind.FromString(payload) for payload in rows]


async def _club(members: RunningService, events: RunningService, people: list[str]) -> Club:
    stub = members_grpc.MembersServiceStub(members.channel)
    created = await stub.CreateCommunity(
        members_pb.CreateCommunityRequest(
            name=f"Phonetics {uuid.uuid4().hex[:6]}", topic="english"
        ),
        metadata=members.auth("owner"),
    )
    club = Club(members, events, created.community.id)
    for person in people:
        await stub.JoinCommunity(
            members_pb.JoinCommunityRequest(community_id=club.id), metadata=members.auth(person)
        )
    return club


async def test_leaving_removed_and_banned_members_give_up_seats_ahead_to_the_waitlist(
    database_url: str, second_database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "data_dir": data_dir}
    async with (
        running_service(MEMBERS, MembersSettings, database_url=database_url, **common) as members,
        running_service(
            EVENTS, EventsSettings, database_url=second_database_url, relay="external", **common
        ) as events,
    ):
        people = ["ann", "bob", "cy"]
        club = await _club(members, events, people)
        started: list[str] = []
        starts: list[datetime] = []

        async def planned() -> bool:
            # Each try starts a few seconds ahead: the wait for the community may be long.
            soon = datetime.now(UTC) + timedelta(seconds=3)
            try:
                started.append(await club.plan(5, soon))
            except grpc.aio.AioRpcError:
                return False
            starts.append(soon)
            return True

        await eventually(planned, "the owner's community reaches events")
        ahead = await club.plan(1, datetime.now(UTC) + timedelta(days=7))
        for person in people:
            await eventually(_registers(club, ahead, person), f"{person}'s join reaches events")
        await club.register(started[0], "ann")
        assert await club.states(ahead) == {"ann": SEATED, "bob": WAITLISTED, "cy": WAITLISTED}
        await asyncio.sleep(max(0.0, (starts[0] - datetime.now(UTC)).total_seconds()))

        await club.club.LeaveCommunity(
            members_pb.LeaveCommunityRequest(community_id=club.id), metadata=members.auth("ann")
        )

        async def promoted(expected: dict[str, int]) -> bool:
            return await club.states(ahead) == expected

        await eventually(
            lambda: promoted({"ann": CANCELLED, "bob": HELD, "cy": WAITLISTED}),
            "ann's seat goes to bob",
        )
        await club.moderate("bob", members_pb.MODERATION_ACTION_REMOVE)
        await eventually(
            lambda: promoted({"ann": CANCELLED, "bob": CANCELLED, "cy": HELD}),
            "bob's held seat goes to cy",
        )
        await club.moderate("cy", members_pb.MODERATION_ACTION_BAN)
        await eventually(
            lambda: promoted({"ann": CANCELLED, "bob": CANCELLED, "cy": CANCELLED}),
            "cy's held seat is freed",
        )

        shown = await club.activities.GetActivity(
            pb.GetActivityRequest(community_id=club.id, activity_id=ahead),
            metadata=events.auth("owner"),
        )
        assert (shown.activity.seats_taken, shown.activity.waitlist_length) == (0, 0)
        cancelled = await club.facts(events_pb.RegistrationCancelled)
        assert [(c.user_id, c.reason, c.cancelled_by_user_id) for c in cancelled] == [
            (person, events_pb.REGISTRATION_CANCEL_REASON_MEMBER_LEFT, "") for person in people
        ]
        assert [p.user_id for p in await club.facts(events_pb.Promoted)] == ["bob", "cy"]
        # Under way when she left: her registration there stays, as attendance records it.
        assert await club.states(started[0]) == {"ann": SEATED}


def _registers(club: Club, activity_id: str, person: str) -> Callable[[], Awaitable[bool]]:
    """Whether the person could register: refused until their join reaches events."""

    async def registered() -> bool:
        try:
            await club.register(activity_id, person)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.PERMISSION_DENIED:
                return False
            raise
        return True

    return registered
