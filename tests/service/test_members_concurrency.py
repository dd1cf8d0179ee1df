"""Concurrent calls on one record, on SQLite and PostgreSQL: no lost update, and every retry
of one request id gets the first answer (docs/decisions/0019-no-lost-update.md).

Each test fires 10 to 40 calls at once at one running members service per store (module
scoped; every test works in communities of its own). SQLite's writers queue, so there these
tests hold by construction; on PostgreSQL two transactions read the same row at once, which
is where updates were lost and retries answered with another call's refusal.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from sqlalchemy import func, select

from services.members.store.tables import (
    care_settings,
    checkins,
    community_rules,
    memberships,
    outbox,
    profile_attributes,
    reports,
    segments,
)
from studyhall.members.v1 import care_service_pb2 as care
from studyhall.members.v1 import care_service_pb2_grpc as care_grpc
from studyhall.members.v1 import checkins_service_pb2 as checkins_pb
from studyhall.members.v1 import checkins_service_pb2_grpc as checkins_grpc
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import profiles_service_pb2 as profiles
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from studyhall.members.v1 import recognition_events_pb2 as recognition_events
from studyhall.members.v1 import recognition_service_pb2 as recognition
from studyhall.members.v1 import recognition_service_pb2_grpc as recognition_grpc
from tests.support import rpcs_members
from tests.support.catalogue import STORES, new_database, serve
from tests.support.services import RunningService

pytestmark = pytest.mark.service

OK = grpc.StatusCode.OK
STALE = grpc.StatusCode.FAILED_PRECONDITION
# What a call may never answer, however many race it.
FAULT_NAMES = {"INTERNAL", "UNKNOWN"}


@pytest.fixture(scope="module", params=STORES)
async def members(
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningService]:
    directory = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    with new_database(str(request.param), request, directory) as database_url:
        async with serve(
            rpcs_members.PROCESS,
            database_url=database_url,
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=directory,
        ) as running:
            yield running


@dataclass
class Hall:
    """A community of its own for one test, and the stubs to act in it."""

    running: RunningService
    id: str
    owner: str

    @property
    def members(self) -> pb_grpc.MembersServiceStub:
        return pb_grpc.MembersServiceStub(self.running.channel)

    @property
    def profiles(self) -> profiles_grpc.ProfilesServiceStub:
        return profiles_grpc.ProfilesServiceStub(self.running.channel)

    def auth(self, user: str) -> list[tuple[str, str]]:
        return self.running.auth(user)

    async def join(self, *users: str) -> None:
        for user in users:
            await self.members.JoinCommunity(
                pb.JoinCommunityRequest(community_id=self.id), metadata=self.auth(user)
            )

    async def count(self, table: Any, **where: Any) -> int:
        query = select(func.count()).select_from(table).where(table.c.community_id == self.id)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        async with self.running.deps.database.read() as session:
            return int(await session.scalar(query) or 0)


async def open_hall(running: RunningService) -> Hall:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    created = await pb_grpc.MembersServiceStub(running.channel).CreateCommunity(
        pb.CreateCommunityRequest(name=f"Race {uuid.uuid4().hex[:8]}", topic="exams"),
        metadata=running.auth(owner),
    )
    return Hall(running, created.community.id, owner)


async def at_once(calls: list[Awaitable[Message]]) -> list[Message | grpc.StatusCode]:
    """Every call started together; each one's response, or the status it was refused with."""

    async def outcome(call: Awaitable[Message]) -> Message | grpc.StatusCode:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            faults.append(f"{error.code().name}: {error.details()}")
            return error.code()

    faults: list[str] = []
    outcomes = list(await asyncio.gather(*(outcome(call) for call in calls)))
    assert not [fault for fault in faults if fault.split(":")[0] in FAULT_NAMES], faults
    return outcomes


def statuses(outcomes: list[Message | grpc.StatusCode]) -> list[grpc.StatusCode]:
    return [OK if isinstance(item, Message) else item for item in outcomes]


async def test_of_calls_with_one_expected_version_exactly_one_lands(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    settings = care_grpc.CareServiceStub(members.channel)
    outcomes = await at_once(
        [
            settings.SetCareSettings(
                care.SetCareSettingsRequest(
                    settings=care.CareSettings(
                        community_id=hall.id,
                        inactive_after_days=days,
                        streak_reminder_hour=20,
                        birthdays=True,
                    ),
                    expected_version=0,
                ),
                metadata=hall.auth(hall.owner),
            )
            for days in range(1, 21)
        ]
    )
    assert statuses(outcomes).count(OK) == 1
    assert set(statuses(outcomes)) == {OK, STALE}
    stored = await settings.GetCareSettings(
        care.GetCareSettingsRequest(community_id=hall.id), metadata=hall.auth(hall.owner)
    )
    (landed,) = [item for item in outcomes if isinstance(item, care.SetCareSettingsResponse)]
    assert stored.settings == landed.settings
    assert stored.settings.version == 1

    segment = (
        await hall.profiles.CreateSegment(
            profiles.CreateSegmentRequest(
                community_id=hall.id, name="all", rule=json.dumps({"points_at_least": 0})
            ),
            metadata=hall.auth(hall.owner),
        )
    ).segment
    outcomes = await at_once(
        [
            hall.profiles.UpdateSegment(
                profiles.UpdateSegmentRequest(
                    segment=profiles.Segment(
                        id=segment.id,
                        community_id=hall.id,
                        description=f"edit {number}",
                        version=segment.version,
                    ),
                    update_mask=FieldMask(paths=["description"]),
                ),
                metadata=hall.auth(hall.owner),
            )
            for number in range(20)
        ]
    )
    assert statuses(outcomes).count(OK) == 1
    assert set(statuses(outcomes)) == {OK, STALE}
    (landed_segment,) = [
        item for item in outcomes if isinstance(item, profiles.UpdateSegmentResponse)
    ]
    got = await hall.profiles.GetSegment(
        profiles.GetSegmentRequest(community_id=hall.id, segment_id=segment.id),
        metadata=hall.auth(hall.owner),
    )
    assert got.segment.description == landed_segment.segment.description
    assert got.segment.version == segment.version + 1


async def test_changes_to_one_membership_at_once_all_land(members: RunningService) -> None:
    """A role change and a mute of the same member, for ten members at once: both land on
    each (a write of the whole row on the version it read would lose one of them)."""
    hall = await open_hall(members)
    people = [f"m{index}-{uuid.uuid4().hex[:6]}" for index in range(10)]
    await hall.join(*people)
    owner = hall.auth(hall.owner)
    calls: list[Awaitable[Message]] = []
    for person in people:
        calls.append(
            hall.members.ChangeRole(
                pb.ChangeRoleRequest(community_id=hall.id, user_id=person, role=pb.ROLE_MODERATOR),
                metadata=owner,
            )
        )
        calls.append(
            hall.members.ModerateMember(
                pb.ModerateMemberRequest(
                    community_id=hall.id,
                    user_id=person,
                    action=pb.MODERATION_ACTION_MUTE,
                    reason="spam",
                ),
                metadata=owner,
            )
        )
    assert set(statuses(await at_once(calls))) == {OK}
    async with members.deps.database.read() as session:
        rows = (
            await session.execute(
                select(memberships).where(
                    memberships.c.community_id == hall.id, memberships.c.user_id.in_(people)
                )
            )
        ).all()
    assert {row.user_id for row in rows} == set(people)
    for row in rows:
        assert row.role == pb.ROLE_MODERATOR, row.user_id
        assert row.muted_until is not None, row.user_id
        # Joined at version 1, then one version per change.
        assert row.version == 3, row.user_id


async def test_a_ban_and_a_join_racing_leave_the_member_banned(members: RunningService) -> None:
    hall = await open_hall(members)
    people = [f"b{index}-{uuid.uuid4().hex[:6]}" for index in range(10)]
    calls: list[Awaitable[Message]] = []
    for person in people:
        calls.append(
            hall.members.JoinCommunity(
                pb.JoinCommunityRequest(community_id=hall.id), metadata=hall.auth(person)
            )
        )
        calls.append(
            hall.members.ModerateMember(
                pb.ModerateMemberRequest(
                    community_id=hall.id,
                    user_id=person,
                    action=pb.MODERATION_ACTION_BAN,
                    reason="known spammer",
                ),
                metadata=hall.auth(hall.owner),
            )
        )
    outcomes = statuses(await at_once(calls))
    # The ban always lands; the join lands only when it came first.
    assert set(outcomes[1::2]) == {OK}
    assert set(outcomes[0::2]) <= {OK, grpc.StatusCode.PERMISSION_DENIED}
    async with members.deps.database.read() as session:
        rows = (
            await session.execute(
                select(memberships).where(
                    memberships.c.community_id == hall.id, memberships.c.user_id.in_(people)
                )
            )
        ).all()
    assert len(rows) == len(people)
    for row in rows:
        assert not row.active, row.user_id
        assert row.banned_until is not None, row.user_id


async def test_moderators_deciding_one_report_at_once_one_decision_stands(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    staff = [f"mod{index}-{uuid.uuid4().hex[:6]}" for index in range(10)]
    await hall.join("reporter", "reported", *staff)
    for person in staff:
        await hall.members.ChangeRole(
            pb.ChangeRoleRequest(community_id=hall.id, user_id=person, role=pb.ROLE_ADMIN),
            metadata=hall.auth(hall.owner),
        )
    report = (
        await hall.members.FileReport(
            pb.FileReportRequest(
                community_id=hall.id, target_user_id="reported", reason=pb.REPORT_REASON_SPAM
            ),
            metadata=hall.auth("reporter"),
        )
    ).report
    outcomes = await at_once(
        [
            hall.members.ResolveReport(
                pb.ResolveReportRequest(
                    community_id=hall.id,
                    report_id=report.report_id,
                    resolution=pb.RESOLUTION_MUTE,
                    note=f"decided by {person}",
                ),
                metadata=hall.auth(person),
            )
            for person in staff
        ]
    )
    assert statuses(outcomes).count(OK) == 1
    assert set(statuses(outcomes)) == {OK, STALE}
    assert await hall.count(outbox, event_type="studyhall.members.v1.ReportResolved") == 1
    assert await hall.count(outbox, event_type="studyhall.members.v1.MemberMuted") == 1
    assert await hall.count(reports, version=2) == 1


async def test_levels_set_at_once_never_fail_and_number_their_versions(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    ladders = [
        [recognition.Level(min_points=0), recognition.Level(min_points=10 + number)]
        for number in range(20)
    ]
    stub = recognition_grpc.RecognitionServiceStub(members.channel)
    outcomes = await at_once(
        [
            stub.SetLevels(
                recognition.SetLevelsRequest(community_id=hall.id, levels=ladder),
                metadata=hall.auth(hall.owner),
            )
            for ladder in ladders
        ]
    )
    assert set(statuses(outcomes)) == {OK}
    async with members.deps.database.read() as session:
        payloads = (
            await session.scalars(
                select(outbox.c.payload).where(
                    outbox.c.community_id == hall.id,
                    outbox.c.event_type == "studyhall.members.v1.LevelsChanged",
                )
            )
        ).all()
    versions = sorted(recognition_events.LevelsChanged.FromString(p).version for p in payloads)
    assert versions == list(range(1, 21))
    current = await stub.GetLevels(
        recognition.GetLevelsRequest(community_id=hall.id), metadata=hall.auth(hall.owner)
    )
    assert [level.min_points for level in current.levels] in [
        [level.min_points for level in ladder] for ladder in ladders
    ]


@dataclass(frozen=True)
class Retried:
    """A write sent many times at once with one request id, and how to count what it made."""

    name: str
    send: Callable[[Hall, str], Awaitable[Message]]
    table: Any
    where: dict[str, Any]


async def _report(hall: Hall, request_id: str) -> Message:
    return await hall.members.FileReport(  # type: ignore[no-any-return]
        pb.FileReportRequest(
            request_id=request_id,
            community_id=hall.id,
            target_user_id="told",
            reason=pb.REPORT_REASON_SPAM,
        ),
        metadata=hall.auth("teller"),
    )


RETRIED = [
    Retried(
        "CreateSegment",
        lambda hall, rid: hall.profiles.CreateSegment(
            profiles.CreateSegmentRequest(
                request_id=rid,
                community_id=hall.id,
                name="retried",
                rule=json.dumps({"points_at_least": 0}),
            ),
            metadata=hall.auth(hall.owner),
        ),
        segments,
        {},
    ),
    Retried("FileReport", _report, reports, {}),
    Retried(
        "DefineAttribute",
        lambda hall, rid: hall.profiles.DefineAttribute(
            profiles.DefineAttributeRequest(
                request_id=rid,
                community_id=hall.id,
                attribute=profiles.AttributeDefinition(
                    key="goal", label="Goal", type=profiles.ATTRIBUTE_TYPE_STRING
                ),
            ),
            metadata=hall.auth(hall.owner),
        ),
        profile_attributes,
        {},
    ),
    Retried(
        "CheckIn",
        lambda hall, rid: checkins_grpc.CheckinsServiceStub(hall.running.channel).CheckIn(
            checkins_pb.CheckInRequest(request_id=rid, community_id=hall.id, note="chapter 2"),
            metadata=hall.auth(hall.owner),
        ),
        checkins,
        {},
    ),
    Retried(
        "UpdateRules",
        lambda hall, rid: hall.members.UpdateRules(
            pb.UpdateRulesRequest(
                request_id=rid, community_id=hall.id, rules=[pb.Rule(title="Be kind")]
            ),
            metadata=hall.auth(hall.owner),
        ),
        community_rules,
        {},
    ),
    Retried(
        "SetCareSettings",
        lambda hall, rid: care_grpc.CareServiceStub(hall.running.channel).SetCareSettings(
            care.SetCareSettingsRequest(
                request_id=rid,
                settings=care.CareSettings(
                    community_id=hall.id, inactive_after_days=7, streak_reminder_hour=21
                ),
                expected_version=0,
            ),
            metadata=hall.auth(hall.owner),
        ),
        care_settings,
        {"version": 1},
    ),
]


@pytest.mark.parametrize("retried", RETRIED, ids=lambda r: r.name)
async def test_retries_of_one_request_id_at_once_all_get_the_first_answer(
    members: RunningService, retried: Retried
) -> None:
    hall = await open_hall(members)
    request_id = f"retry-{uuid.uuid4().hex}"
    if retried.name == "FileReport":
        await hall.join("teller", "told")
    outcomes = await at_once([retried.send(hall, request_id) for _ in range(10)])
    assert set(statuses(outcomes)) == {OK}
    assert all(outcome == outcomes[0] for outcome in outcomes)
    assert await hall.count(retried.table, **retried.where) == 1
