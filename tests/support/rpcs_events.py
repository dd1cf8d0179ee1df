"""The request catalogue of the events process: ActivitiesService (see
tests/support/catalogue.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.events.app import SPEC
from services.events.settings import EventsSettings
from services.events.store.tables import metadata
from services.kit.access import Role
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from studyhall.members.v1 import profiles_service_pb2 as profiles_pb
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from tests.support.access import grant
from tests.support.catalogue import (
    Peer,
    Process,
    Rpc,
    World,
    data_rights_entries,
    new_id,
    record_fields,
)
from tests.support.services import RunningService

ACTIVITIES = pb.DESCRIPTOR.services_by_name["ActivitiesService"]
OWNER = "olga"
# A billing product sold as a ticket (events does not look it up in billing).
TICKET = "0b1e7c55-7f1a-4c2e-9d4b-5a6f7e8d9c0b"


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _activity(world: World) -> pb.CreateActivityRequest:
    return pb.CreateActivityRequest(
        request_id=new_id(),
        community_id=world.community_id,
        kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP,
        title="Reading papers efficiently",
        description="Bring a paper you struggled with.",
        start_time=_at(datetime(2031, 3, 14, 18, 30, tzinfo=UTC)),
        end_time=_at(datetime(2031, 3, 14, 20, 0, tzinfo=UTC)),
        capacity=30,
        location="Library, room 4",
    )


def _w(world: World) -> dict[str, Any]:
    return {"request_id": new_id(), "community_id": world.community_id}


def _a(world: World) -> dict[str, Any]:
    return {"community_id": world.community_id, "activity_id": world.activity_id}


CATALOGUE: list[Rpc] = [
    Rpc(ACTIVITIES, "CreateActivity", _activity, Role.MODERATOR, True),
    Rpc(ACTIVITIES, "GetActivity", lambda w: pb.GetActivityRequest(**_a(w)), None, False),
    Rpc(
        ACTIVITIES,
        "UpdateActivity",
        lambda w: pb.UpdateActivityRequest(
            **_w(w),
            activity_id=w.activity_id,
            activity=pb.Activity(description=f"Bring a paper ({uuid.uuid4().hex[:6]})."),
            update_mask=FieldMask(paths=["description"]),
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        ACTIVITIES,
        "ListActivities",
        lambda w: pb.ListActivitiesRequest(community_id=w.community_id),
        None,
        False,
    ),
    Rpc(
        ACTIVITIES,
        "ListMyActivities",
        lambda w: pb.ListMyActivitiesRequest(community_id=w.community_id),
        None,
        False,
        mine=True,
    ),
    Rpc(
        ACTIVITIES,
        "Register",
        lambda w: pb.RegisterRequest(**_w(w), activity_id=w.activity_id),
        Role.MEMBER,
        True,
    ),
    Rpc(
        ACTIVITIES,
        "ConfirmSeat",
        lambda w: pb.ConfirmSeatRequest(**_w(w), activity_id=w.held_activity_id),
        Role.MEMBER,
        True,
        mine=True,
    ),
    Rpc(
        ACTIVITIES,
        "CancelRegistration",
        lambda w: pb.CancelRegistrationRequest(**_w(w), activity_id=w.registered_activity_id),
        Role.MEMBER,
        True,
        mine=True,
    ),
    Rpc(
        ACTIVITIES,
        "ListRegistrations",
        # The activity the owner registered for: its registrations hold the activity's id.
        lambda w: pb.ListRegistrationsRequest(
            community_id=w.community_id, activity_id=w.registered_activity_id
        ),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ACTIVITIES,
        "GetCheckInCode",
        lambda w: pb.GetCheckInCodeRequest(**_a(w)),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ACTIVITIES,
        "CheckIn",
        lambda w: pb.CheckInRequest(**_w(w), activity_id=w.soon_activity_id, user_id=OWNER),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        ACTIVITIES,
        "SubmitFeedback",
        lambda w: pb.SubmitFeedbackRequest(
            **_w(w), activity_id=w.attended_activity_id, rating=4, would_recommend=9
        ),
        Role.MEMBER,
        True,
        mine=True,
    ),
    Rpc(
        ACTIVITIES,
        "GetFeedbackSummary",
        lambda w: pb.GetFeedbackSummaryRequest(**_a(w)),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ACTIVITIES,
        "WriteRetrospective",
        lambda w: pb.WriteRetrospectiveRequest(
            **_w(w), activity_id=w.activity_id, retrospective="Start on time next time."
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        ACTIVITIES,
        "ExportCalendar",
        lambda w: pb.ExportCalendarRequest(community_id=w.community_id),
        None,
        False,
        document=True,
    ),
    Rpc(
        ACTIVITIES,
        "SetChallengeGoal",
        lambda w: pb.SetChallengeGoalRequest(
            **_w(w),
            activity_id=w.challenge_id,
            goal=pb.ChallengeGoal(
                kind=pb.CHALLENGE_GOAL_KIND_CHECK_IN_DAYS, target=21, reward_points=50
            ),
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        ACTIVITIES,
        "GetChallengeProgress",
        lambda w: pb.GetChallengeProgressRequest(
            community_id=w.community_id, activity_id=w.challenge_id
        ),
        None,
        False,
    ),
    Rpc(
        ACTIVITIES,
        "ListChallengeLeaderboard",
        lambda w: pb.ListChallengeLeaderboardRequest(
            community_id=w.community_id, activity_id=w.challenge_id
        ),
        None,
        False,
    ),
    Rpc(
        ACTIVITIES,
        "InviteSegment",
        lambda w: pb.InviteSegmentRequest(
            **_w(w), activity_id=w.activity_id, segment_id=w.segment_id
        ),
        Role.MODERATOR,
        True,
        peer_checked=True,
    ),
    Rpc(
        ACTIVITIES,
        "SetActivityTicket",
        lambda w: pb.SetActivityTicketRequest(
            **_w(w), activity_id=w.paid_activity_id, product_id=TICKET
        ),
        Role.MODERATOR,
        True,
    ),
    Rpc(
        ACTIVITIES,
        "CancelActivity",
        lambda w: pb.CancelActivityRequest(
            **_w(w), activity_id=w.doomed_activity_id, reason="The speaker is ill."
        ),
        Role.MODERATOR,
        True,
    ),
    *data_rights_entries(ACTIVITIES),
]


async def prepare(running: RunningService, needs: frozenset[str] | None = None) -> World:
    """A community the owner owns (as members' events leave it), holding one activity, and
    the records of the owner's that `needs` names (all of them for None): an activity they
    registered for, one where a seat is held for them, one starting soon, one they attended,
    one to cancel, a challenge not started, one to sell tickets for, and a segment (the
    community is made in the members peer)."""
    wanted = set(record_fields()) if needs is None else set(needs)
    made: dict[str, str] = {}
    if "segment_id" in wanted:
        # A segment lives in members: the community is made there, and events knows it.
        community_id, made["segment_id"] = await _members_segment(running)
    else:
        community_id = str(uuid.uuid4())
    await grant(running, community_id, OWNER, Role.OWNER)
    world = World(community_id=community_id, owner=OWNER)
    owner = running.auth(OWNER)

    async def call(method: str, request: Message) -> Any:
        rpc = Rpc(ACTIVITIES, method, lambda _: request, None, True)
        return await rpc.call(running.channel, request, owner)

    async def create(**fields: Any) -> str:
        request = _activity(world)
        for name, value in fields.items():
            if name in ("start_time", "end_time"):
                getattr(request, name).CopyFrom(value)
            else:
                setattr(request, name, value)
        return str((await call("CreateActivity", request)).activity.id)

    made["activity_id"] = await create()
    if "registered_activity_id" in wanted:
        made["registered_activity_id"] = await create()
        await call(
            "Register", pb.RegisterRequest(**_w(world), activity_id=made["registered_activity_id"])
        )
    if "held_activity_id" in wanted:
        held = made["held_activity_id"] = await create(capacity=1)
        await grant(running, community_id, "seated", Role.MEMBER)
        await _as(running, "seated", "Register", pb.RegisterRequest(**_w(world), activity_id=held))
        await call("Register", pb.RegisterRequest(**_w(world), activity_id=held))
        await _as(
            running,
            "seated",
            "CancelRegistration",
            pb.CancelRegistrationRequest(**_w(world), activity_id=held),
        )
    soon = datetime.now(UTC) + timedelta(minutes=30)
    if "soon_activity_id" in wanted:
        made["soon_activity_id"] = await create(
            start_time=_at(soon), end_time=_at(soon + timedelta(hours=1))
        )
    if "attended_activity_id" in wanted:
        started = datetime.now(UTC) + timedelta(seconds=3)  # ahead of a slow create
        attended = made["attended_activity_id"] = await create(
            start_time=_at(started), end_time=_at(started + timedelta(hours=2))
        )
        await call("Register", pb.RegisterRequest(**_w(world), activity_id=attended))
        await call("CheckIn", pb.CheckInRequest(**_w(world), activity_id=attended, user_id=OWNER))
        await asyncio.sleep(max(0.0, (started - datetime.now(UTC)).total_seconds()) + 0.05)
    if "doomed_activity_id" in wanted:
        made["doomed_activity_id"] = await create()
    if "paid_activity_id" in wanted:
        made["paid_activity_id"] = await create()
    if "challenge_id" in wanted:
        made["challenge_id"] = await create(
            kind=pb.ACTIVITY_KIND_CHALLENGE,
            location="",
            end_time=_at(datetime(2031, 4, 13, 18, 30, tzinfo=UTC)),
        )
    return World(community_id=community_id, owner=OWNER, **made)


async def _as(running: RunningService, user: str, method: str, request: Message) -> Any:
    rpc = Rpc(ACTIVITIES, method, lambda _: request, None, True)
    return await rpc.call(running.channel, request, running.auth(user))


async def _members_segment(running: RunningService) -> tuple[str, str]:
    """A community the owner owns in the members peer, and a segment of it."""
    members = running.peers["members"]
    owner = members.auth(OWNER)
    community = await members_grpc.MembersServiceStub(members.channel).CreateCommunity(
        members_pb.CreateCommunityRequest(name=f"Club {uuid.uuid4().hex[:8]}", topic="exams"),
        metadata=owner,
    )
    segment = await profiles_grpc.ProfilesServiceStub(members.channel).CreateSegment(
        profiles_pb.CreateSegmentRequest(
            community_id=community.community.id,
            name="everyone",
            rule=json.dumps({"points_at_least": 0}),
        ),
        metadata=owner,
    )
    return community.community.id, segment.segment.id


PROCESS = Process(
    name="events",
    spec=SPEC,
    settings=EventsSettings,
    metadata=metadata,
    catalogue=CATALOGUE,
    prepare=prepare,
    exported=("activity_id",),
    # InviteSegment asks members for a segment's members.
    peers=(
        Peer(
            "members",
            MEMBERS,
            MembersSettings,
            address_setting="members_address",
            overrides={"care_sweep_seconds": 0},
        ),
    ),
)
