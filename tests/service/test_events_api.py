"""Hosts schedule activities in their community and members read them back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from services.events.app import SPEC
from services.events.settings import EventsSettings
from services.events.store.tables import activities, idempotency_keys
from services.kit.access import Role
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.errors import field_violations
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service

# Microseconds on purpose: the round trip must keep them.
EVENING = datetime(2031, 3, 14, 18, 30, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def events(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        SPEC,
        EventsSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as running:
        yield running


@pytest.fixture
def stub(events: RunningService) -> pb_grpc.ActivitiesServiceStub:
    return pb_grpc.ActivitiesServiceStub(events.channel)


def community() -> str:
    return str(uuid.uuid4())


async def community_hosted_by(running: RunningService, host: str) -> str:
    """A new public community in which `host` is a moderator, so may schedule activities."""
    community_id = community()
    await grant(running, community_id, host, Role.MODERATOR)
    return community_id


def stamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


def lecture(
    community_id: str,
    *,
    request_id: str = "",
    title: str = "Reading papers efficiently",
    start: datetime = EVENING,
    end: datetime | None = None,
    capacity: int = 0,
) -> pb.CreateActivityRequest:
    return pb.CreateActivityRequest(
        request_id=request_id,
        community_id=community_id,
        kind=pb.ACTIVITY_KIND_ONLINE_LECTURE,
        title=title,
        start_time=stamp(start),
        end_time=stamp(end) if end else None,
        capacity=capacity,
    )


async def rows(running: RunningService) -> tuple[int, int]:
    """How many activities and idempotency keys the service's database holds."""
    async with running.deps.database.read() as session:
        activity_count = await session.scalar(select(func.count()).select_from(activities))
        key_count = await session.scalar(select(func.count()).select_from(idempotency_keys))
    return int(activity_count or 0), int(key_count or 0)


async def test_host_schedules_meetup_and_members_read_it_back(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    community_id = await community_hosted_by(events, "ada")
    created = await stub.CreateActivity(
        pb.CreateActivityRequest(
            community_id=community_id,
            kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP,
            title="  Study group at the library  ",
            description="Bring the week's flashcards.",
            start_time=stamp(EVENING),
            end_time=stamp(EVENING + timedelta(hours=2)),
            capacity=12,
            location="Central Library, room 3",
        ),
        metadata=events.auth("ada"),
    )
    activity = created.activity
    assert uuid.UUID(activity.id).version == 4
    assert activity.community_id == community_id
    assert activity.host_user_id == "ada"
    assert activity.kind == pb.ACTIVITY_KIND_OFFLINE_MEETUP
    assert activity.title == "Study group at the library"
    assert activity.description == "Bring the week's flashcards."
    assert activity.start_time.ToDatetime(tzinfo=UTC) == EVENING
    assert activity.end_time.ToDatetime(tzinfo=UTC) == EVENING + timedelta(hours=2)
    assert activity.capacity == 12
    assert activity.location == "Central Library, room 3"
    assert activity.version == 1
    assert activity.HasField("create_time")

    fetched = await stub.GetActivity(
        pb.GetActivityRequest(community_id=community_id, activity_id=activity.id),
        metadata=events.auth("grace"),
    )
    assert fetched.activity == activity


async def test_start_time_in_another_zone_is_kept_as_the_same_instant(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    community_id = await community_hosted_by(events, "ada")
    in_taipei = datetime(2031, 3, 15, 2, 30, tzinfo=timezone(timedelta(hours=8)))
    created = await stub.CreateActivity(
        lecture(community_id, start=in_taipei), metadata=events.auth("ada")
    )
    fetched = await stub.GetActivity(
        pb.GetActivityRequest(community_id=community_id, activity_id=created.activity.id),
        metadata=events.auth("ada"),
    )
    assert fetched.activity.start_time.ToDatetime(tzinfo=UTC) == in_taipei


async def test_open_ended_lecture_has_no_end_time_and_unlimited_capacity(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    community_id = await community_hosted_by(events, "ada")
    created = await stub.CreateActivity(lecture(community_id), metadata=events.auth("ada"))
    fetched = await stub.GetActivity(
        pb.GetActivityRequest(community_id=community_id, activity_id=created.activity.id),
        metadata=events.auth("ada"),
    )
    assert not fetched.activity.HasField("end_time")
    assert fetched.activity.capacity == 0
    assert fetched.activity.location == ""


async def test_activity_of_another_community_is_not_found(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    home = await community_hosted_by(events, "ada")
    elsewhere = await community_hosted_by(events, "ada")
    created = await stub.CreateActivity(lecture(home), metadata=events.auth("ada"))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetActivity(
            pb.GetActivityRequest(community_id=elsewhere, activity_id=created.activity.id),
            metadata=events.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"activity {created.activity.id} not found" in (caught.value.details() or "")


async def test_retry_with_same_request_id_schedules_one_activity(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    request = lecture(await community_hosted_by(events, "ada"), request_id="schedule-1")
    first = await stub.CreateActivity(request, metadata=events.auth("ada"))
    second = await stub.CreateActivity(request, metadata=events.auth("ada"))

    assert second.activity == first.activity
    assert await rows(events) == (1, 1)


async def test_same_request_id_with_different_payload_is_refused(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    community_id = await community_hosted_by(events, "ada")
    await stub.CreateActivity(
        lecture(community_id, request_id="schedule-1"), metadata=events.auth("ada")
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateActivity(
            lecture(community_id, request_id="schedule-1", capacity=30),
            metadata=events.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await rows(events) == (1, 1)


async def test_missing_fields_are_named_and_nothing_is_written(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    # The edge names what breaks the contract first; the handler then names the rest at once.
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stub.CreateActivity(
            pb.CreateActivityRequest(community_id=""), metadata=events.auth("ada")
        )
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(malformed.value) == {"community_id": "value is required"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateActivity(
            pb.CreateActivityRequest(community_id=community()), metadata=events.auth("ada")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert violations == {
        "kind": "is required",
        "title": "is required",
        "start_time": "is required",
    }
    assert await rows(events) == (0, 0)


@pytest.mark.parametrize("length", [timedelta(0), timedelta(minutes=-30)])
async def test_activity_ending_before_it_starts_is_refused(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub, length: timedelta
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateActivity(
            lecture(community(), end=EVENING + length), metadata=events.auth("ada")
        )
    assert field_violations(caught.value) == {"end_time": "must be after start_time"}
    assert await rows(events) == (0, 0)


async def test_meetup_without_a_place_is_refused(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateActivity(
            pb.CreateActivityRequest(
                community_id=community(),
                kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP,
                title="Study group",
                start_time=stamp(EVENING),
            ),
            metadata=events.auth("ada"),
        )
    assert field_violations(caught.value) == {"location": "is required"}


async def test_negative_capacity_and_overlong_texts_are_all_named(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateActivity(
            pb.CreateActivityRequest(
                community_id=community(),
                kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP,
                title="t" * 201,
                description="d" * 10_001,
                start_time=stamp(EVENING),
                capacity=-1,
                location="l" * 301,
            ),
            metadata=events.auth("ada"),
        )
    assert set(field_violations(caught.value)) == {
        "title",
        "description",
        "capacity",
        "location",
    }


async def test_timestamp_outside_the_calendar_is_invalid(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    request = lecture(community())
    request.start_time.seconds = 2**40
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateActivity(request, metadata=events.auth("ada"))
    assert set(field_violations(caught.value)) == {"start_time"}


async def test_unknown_kind_is_invalid(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    request = lecture(community())
    request.kind = pb.ActivityKind.ValueType(42)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateActivity(request, metadata=events.auth("ada"))
    assert set(field_violations(caught.value)) == {"kind"}


async def test_call_without_token_is_unauthenticated(
    events: RunningService, stub: pb_grpc.ActivitiesServiceStub
) -> None:
    community_id = community()
    with pytest.raises(grpc.aio.AioRpcError) as created:
        await stub.CreateActivity(lecture(community_id))
    assert created.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as fetched:
        await stub.GetActivity(
            pb.GetActivityRequest(community_id=community_id, activity_id=str(uuid.uuid4()))
        )
    assert fetched.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await rows(events) == (0, 0)
