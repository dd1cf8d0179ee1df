"""The content calendar: drafts scheduled at a local time go live once, on time, after a
kill and a restart, and with two replicas (two OS processes); missed, unscheduled and bad
schedules; the calendar by local day."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select, update

from services.content.store.tables import access, metadata, outbox, scheduled_jobs
from services.kit.access import Role
from services.kit.auth import LocalSigner
from services.kit.database import Database
from services.kit.projection import upsert_newer
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.catalogue import changed_tables, new_database, snapshot
from tests.support.processes import service_process
from tests.support.services import RunningService
from tests.support.waiting import eventually

pytestmark = pytest.mark.service


def _local(moment: datetime, zone: str = "UTC") -> str:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")


async def _draft(stub: Any, community_id: str, user: list[tuple[str, str]], **fields: Any) -> Any:
    reply = await stub.CreatePost(
        pb.CreatePostRequest(
            community_id=community_id,
            kind=pb.POST_KIND_ARTICLE,
            title="Weekly goals",
            body="What will you practise this week?",
            draft=True,
            **fields,
        ),
        metadata=user,
    )
    return reply.post


async def _events(database: Database, community_id: str) -> list[str]:
    async with database.read() as session:
        rows = await session.execute(
            select(outbox.c.event_type)
            .where(outbox.c.community_id == community_id)
            .order_by(outbox.c.seq)
        )
        return [str(row.event_type).rsplit(".", 1)[-1] for row in rows]


async def test_a_scheduled_draft_goes_live_once_at_its_time(content: RunningService) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "ada", Role.MEMBER)
    stub = pb_grpc.ContentServiceStub(content.channel)
    draft = await _draft(stub, community_id, content.auth("ada"))
    due = datetime.now(UTC) + timedelta(seconds=4)  # still ahead when a slow machine schedules

    scheduled = await stub.SchedulePost(
        pb.SchedulePostRequest(community_id=community_id, post_id=draft.id, local_time=_local(due)),
        metadata=content.auth("ada"),
    )
    assert scheduled.post.scheduled_time.ToDatetime(tzinfo=UTC) == due.replace(microsecond=0)
    assert scheduled.post.state == pb.POST_STATE_DRAFT

    async def live() -> bool:
        read = await stub.GetPost(
            pb.GetPostRequest(community_id=community_id, post_id=draft.id),
            metadata=content.auth("ada"),
        )
        return bool(read.post.state == pb.POST_STATE_PUBLISHED)

    await eventually(live, "the draft goes live")
    await asyncio.sleep(0.5)  # a second run would have happened by now
    assert await _events(content.deps.database, community_id) == ["PostScheduled", "PostCreated"]


async def test_a_local_time_is_in_the_communitys_time_zone_and_the_calendar_shows_it(
    content: RunningService,
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "ada", Role.MODERATOR)
    async with content.deps.database.write() as session:
        await session.execute(
            update(access.communities)
            .where(access.communities.c.community_id == community_id)
            .values(time_zone="Asia/Tokyo")
        )
    stub = pb_grpc.ContentServiceStub(content.channel)
    draft = await _draft(stub, community_id, content.auth("ada"))
    next_year = datetime.now(UTC).year + 1

    scheduled = await stub.SchedulePost(
        pb.SchedulePostRequest(
            community_id=community_id, post_id=draft.id, local_time=f"{next_year}-01-04T08:00"
        ),
        metadata=content.auth("ada"),
    )
    assert scheduled.post.scheduled_time.ToDatetime(tzinfo=UTC) == datetime(
        next_year, 1, 3, 23, 0, tzinfo=UTC
    )
    week = await stub.ListCalendar(
        pb.ListCalendarRequest(community_id=community_id, start_date=f"{next_year}-01-04"),
        metadata=content.auth("ada"),
    )
    [entry] = week.entries
    assert (entry.post_id, entry.status) == (draft.id, pb.CALENDAR_STATUS_PLANNED)
    assert entry.local_date == f"{next_year}-01-04"
    # In UTC the same instant is still the 3rd: outside a week starting on the 4th.
    utc_week = await stub.ListCalendar(
        pb.ListCalendarRequest(
            community_id=community_id, start_date=f"{next_year}-01-04", time_zone="UTC"
        ),
        metadata=content.auth("ada"),
    )
    assert utc_week.entries == []

    unscheduled = await stub.UnschedulePost(
        pb.UnschedulePostRequest(community_id=community_id, post_id=draft.id),
        metadata=content.auth("ada"),
    )
    assert not unscheduled.post.HasField("scheduled_time")
    async with content.deps.database.read() as session:
        jobs = await session.scalar(
            select(func.count()).select_from(scheduled_jobs).where(scheduled_jobs.c.key == draft.id)
        )
    assert jobs == 0


async def test_a_draft_whose_author_was_muted_meanwhile_is_missed(
    content: RunningService,
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "ada", Role.MEMBER)
    await grant(content, community_id, "mo", Role.MODERATOR)
    stub = pb_grpc.ContentServiceStub(content.channel)
    draft = await _draft(stub, community_id, content.auth("ada"))
    due = datetime.now(UTC) + timedelta(seconds=4)  # still ahead when a slow machine schedules
    await stub.SchedulePost(
        pb.SchedulePostRequest(community_id=community_id, post_id=draft.id, local_time=_local(due)),
        metadata=content.auth("ada"),
    )
    async with content.deps.database.write() as session:
        await session.execute(
            update(access.roles)
            .where(access.roles.c.community_id == community_id, access.roles.c.user_id == "ada")
            .values(muted_until=datetime.now(UTC) + timedelta(days=1), version=9)
        )
    key = f"studyhall:content:standing:{community_id}:ada"
    await content.deps.redis.call(lambda client: client.delete(key), None)

    async def missed() -> bool:
        read = await stub.GetPost(
            pb.GetPostRequest(community_id=community_id, post_id=draft.id),
            metadata=content.auth("ada"),
        )
        return bool(read.post.missed_reason)

    await eventually(missed, "the schedule is missed")
    calendar = await stub.ListCalendar(
        pb.ListCalendarRequest(
            community_id=community_id, start_date=datetime.now(UTC).date().isoformat(), days=2
        ),
        metadata=content.auth("mo"),
    )
    [entry] = calendar.entries
    assert entry.status == pb.CALENDAR_STATUS_MISSED
    assert entry.missed_reason == "its author is muted"
    assert await _events(content.deps.database, community_id) == ["PostScheduled", "PostMissed"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"local_time": "2020-01-01T09:00"}, "local_time"),
        ({"local_time": "next monday"}, "local_time"),
        ({"local_time": "2030-02-30T09:00"}, "local_time"),
        ({"local_time": "2030-01-01T09:00", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"local_time": "2099-01-01T09:00"}, "local_time"),
        # Off the calendar once moved to UTC: no instant to schedule at.
        ({"local_time": "9999-12-31T23:00", "time_zone": "Etc/GMT+12"}, "local_time"),
        ({"local_time": "0001-01-01T00:30", "time_zone": "Asia/Tokyo"}, "local_time"),
    ],
)
async def test_bad_schedules_are_refused_naming_the_field_and_change_nothing(
    content: RunningService, fields: dict[str, str], field: str
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "ada", Role.MEMBER)
    stub = pb_grpc.ContentServiceStub(content.channel)
    draft = await _draft(stub, community_id, content.auth("ada"))
    before = await snapshot(content, metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SchedulePost(
            pb.SchedulePostRequest(community_id=community_id, post_id=draft.id, **fields),
            metadata=content.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")
    assert changed_tables(before, await snapshot(content, metadata)) == []


# The scheduler in real processes: killed before the time, restarted after it; two replicas.


@contextmanager
def _content_process(
    data_dir: Path, database_url: str, redis_url: str, nats_url: str
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Content's API and scheduler alone: its relay and consumers are not what is tested."""
    with service_process(
        "content",
        data_dir,
        database_url,
        redis_url,
        nats_url,
        relay="external",
        consumers="external",
    ) as started:
        yield started


async def _member(database_url: str, community_id: str, user_id: str) -> None:
    database = Database(database_url)
    try:
        async with database.write() as session:
            await upsert_newer(
                session,
                access.communities,
                [{"community_id": community_id, "visibility": 1, "version": 1}],
                ["community_id"],
            )
            await upsert_newer(
                session,
                access.roles,
                [
                    {
                        "community_id": community_id,
                        "user_id": user_id,
                        "role": int(Role.MEMBER),
                        "active": True,
                        "version": 1,
                    }
                ],
                ["community_id", "user_id"],
            )
    finally:
        await database.close()


async def _schedule_many(
    port: int, data_dir: Path, community_id: str, count: int, due: datetime
) -> list[str]:
    user = [("authorization", f"Bearer {LocalSigner.ensure(data_dir).mint('ada')}")]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ContentServiceStub(channel)
        ids: list[str] = []
        for n in range(count):
            draft = await _draft(stub, community_id, user, summary=f"#{n}")
            await stub.SchedulePost(
                pb.SchedulePostRequest(
                    community_id=community_id, post_id=draft.id, local_time=_local(due)
                ),
                metadata=user,
            )
            ids.append(draft.id)
        return ids


async def _published_once(database_url: str, post_ids: list[str]) -> bool:
    """Whether each post has exactly one PostCreated; fails at once on a second."""
    database = Database(database_url)
    try:
        async with database.read() as session:
            rows = await session.execute(
                select(outbox.c.ce_subject, func.count())
                .where(outbox.c.event_type.like("%.PostCreated"))
                .group_by(outbox.c.ce_subject)
            )
            counts = {str(subject).rsplit("/", 1)[-1]: int(count) for subject, count in rows}
    finally:
        await database.close()
    assert all(counts.get(post_id, 0) <= 1 for post_id in post_ids), counts
    return all(counts.get(post_id, 0) == 1 for post_id in post_ids)


async def test_posts_scheduled_before_a_kill_go_live_once_after_the_restart(
    tmp_path: Path, redis_url: str, nats_url: str
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'content.db'}"
    community_id = str(uuid.uuid4())
    with _content_process(tmp_path, database_url, redis_url, nats_url) as (process, port):
        await _member(database_url, community_id, "ada")
        due = datetime.now(UTC) + timedelta(seconds=4)
        post_ids = await _schedule_many(port, tmp_path, community_id, 5, due)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # Down when they fall due.
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.5)
    assert not await _published_once(database_url, post_ids)

    with _content_process(tmp_path, database_url, redis_url, nats_url):

        async def done() -> bool:
            return await _published_once(database_url, post_ids)

        await eventually(done, "every post goes live after the restart")
        await asyncio.sleep(1.0)
        assert await _published_once(database_url, post_ids)


async def test_two_replicas_publish_each_scheduled_post_once(
    tmp_path: Path,
    redis_url: str,
    nats_url: str,
    request: pytest.FixtureRequest,
) -> None:
    with new_database("postgresql", request, tmp_path) as database_url:
        community_id = str(uuid.uuid4())
        with (
            _content_process(tmp_path, database_url, redis_url, nats_url) as (_one, port),
            _content_process(tmp_path, database_url, redis_url, nats_url) as (two, _),
        ):
            await _member(database_url, community_id, "ada")
            due = datetime.now(UTC) + timedelta(seconds=10)
            post_ids = await _schedule_many(port, tmp_path, community_id, 40, due)

            async def done() -> bool:
                return await _published_once(database_url, post_ids)

            await eventually(done, "every post goes live", seconds=40)
            await asyncio.sleep(1.0)
            assert await _published_once(database_url, post_ids)
            assert two.poll() is None


@pytest.mark.parametrize(
    ("start_date", "time_zone"), [("9999-12-30", "UTC"), ("0001-01-01", "Asia/Tokyo")]
)
async def test_a_calendar_that_runs_off_the_calendar_is_refused_naming_start_date(
    content: RunningService, start_date: str, time_zone: str
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "mo", Role.MODERATOR)
    stub = pb_grpc.ContentServiceStub(content.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListCalendar(
            pb.ListCalendarRequest(
                community_id=community_id, start_date=start_date, days=62, time_zone=time_zone
            ),
            metadata=content.auth("mo"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "start_date" in (caught.value.details() or "")
