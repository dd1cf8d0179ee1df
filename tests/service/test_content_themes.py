"""Recurring themes: every week on a weekday at a local time a post from a template goes
live as its author, once per occurrence with two replicas on one database, the next one a
week on; an occurrence its author may no longer post is missed and the next still planned;
ending a theme ends its occurrences; bad themes refused naming the field, nothing written."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from sqlalchemy import func, select, update

from services.content.app import SPEC
from services.content.settings import ContentSettings
from services.content.store.tables import access, metadata, outbox, posts, scheduled_jobs
from services.kit.access import Role
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.catalogue import QUIET, changed_tables, snapshot
from tests.support.errors import field_violations
from tests.support.services import RunningService, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service


def _soon(seconds: float = 2.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _theme(due: datetime, **fields: Any) -> pb.Theme:
    values: dict[str, Any] = {
        "title": "Weekly goals {date}",
        "body": "What will you practise this week ({date})?",
        "kind": pb.POST_KIND_QUESTION,
        "weekday": due.isoweekday(),
        "local_time": due.strftime("%H:%M:%S"),
        **fields,
    }
    return pb.Theme(**values)


async def _events(content: RunningService, community_id: str) -> list[str]:
    async with content.deps.database.read() as session:
        rows = await session.execute(
            select(outbox.c.event_type)
            .where(outbox.c.community_id == community_id)
            .order_by(outbox.c.seq)
        )
        return [str(row.event_type).rsplit(".", 1)[-1] for row in rows]


async def _themes(content: RunningService, community_id: str) -> list[pb.Theme]:
    reply = await pb_grpc.ContentServiceStub(content.channel).ListThemes(
        pb.ListThemesRequest(community_id=community_id), metadata=content.auth("olga")
    )
    return list(reply.themes)


async def test_two_replicas_publish_each_occurrence_once_and_plan_the_next_a_week_on(
    content: RunningService,
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "olga", Role.ADMIN)
    stub = pb_grpc.ContentServiceStub(content.channel)
    settings = content.deps.settings
    # A second replica on the same database, its own scheduler claiming from the same jobs.
    async with running_service(
        SPEC,
        ContentSettings,
        database_url=settings.effective_database_url(),
        redis_url=settings.redis_url,
        nats_url=settings.nats_url,
        data_dir=settings.data_dir,
        **QUIET,
    ):
        due = _soon()
        created = await stub.CreateTheme(
            pb.CreateThemeRequest(
                community_id=community_id, theme=_theme(due), request_id="weekly-goals"
            ),
            metadata=content.auth("olga"),
        )
        theme = created.theme
        assert theme.time_zone == "UTC"
        assert theme.next_local_date == due.date().isoformat()

        async def published() -> bool:
            [current] = await _themes(content, community_id)
            return current.published_count == 1

        await eventually(published, "the first occurrence goes live")
        await asyncio.sleep(0.6)  # a second run on either replica would have happened by now

    [current] = await _themes(content, community_id)
    following = due.date() + timedelta(days=7)
    assert current.next_local_date == following.isoformat()
    assert current.next_time.ToDatetime(tzinfo=UTC) == due.replace(microsecond=0) + timedelta(
        days=7
    )
    async with content.deps.database.read() as session:
        titles = list(
            await session.scalars(select(posts.c.title).where(posts.c.community_id == community_id))
        )
        keys = list(
            await session.scalars(
                select(scheduled_jobs.c.key).where(scheduled_jobs.c.community_id == community_id)
            )
        )
    assert titles == [f"Weekly goals {due.date().isoformat()}"]
    assert keys == [f"{theme.id}/{following.isoformat()}"]
    assert await _events(content, community_id) == ["ThemeCreated", "PostCreated", "ThemePublished"]


async def test_an_occurrence_in_an_archived_community_is_missed_and_the_next_still_planned(
    content: RunningService,
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "olga", Role.ADMIN)
    stub = pb_grpc.ContentServiceStub(content.channel)
    due = _soon()
    await stub.CreateTheme(
        pb.CreateThemeRequest(community_id=community_id, theme=_theme(due)),
        metadata=content.auth("olga"),
    )
    async with content.deps.database.write() as session:
        await session.execute(
            update(access.communities)
            .where(access.communities.c.community_id == community_id)
            .values(archived=True)
        )
    key = f"studyhall:content:standing:{community_id}:olga"
    await content.deps.redis.call(lambda client: client.delete(key), None)

    async def missed() -> bool:
        [current] = await _themes(content, community_id)
        return bool(current.last_missed_reason)

    await eventually(missed, "the occurrence is missed")
    [current] = await _themes(content, community_id)
    assert current.last_missed_reason == "the community is archived"
    assert current.published_count == 0
    assert current.next_local_date == (due.date() + timedelta(days=7)).isoformat()
    assert await _events(content, community_id) == ["ThemeCreated", "ThemeMissed"]


async def test_an_ended_theme_plans_nothing_more(content: RunningService) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "olga", Role.ADMIN)
    stub = pb_grpc.ContentServiceStub(content.channel)
    created = await stub.CreateTheme(
        pb.CreateThemeRequest(
            community_id=community_id,
            theme=_theme(_soon(3600), time_zone="Asia/Tokyo", local_time="09:00"),
        ),
        metadata=content.auth("olga"),
    )
    first = created.theme.next_time.ToDatetime(tzinfo=UTC)
    assert first.astimezone(ZoneInfo("Asia/Tokyo")).hour == 9
    ended = await stub.EndTheme(
        pb.EndThemeRequest(community_id=community_id, theme_id=created.theme.id),
        metadata=content.auth("olga"),
    )
    assert not ended.theme.active
    assert not ended.theme.HasField("next_time")
    async with content.deps.database.read() as session:
        jobs = await session.scalar(
            select(func.count())
            .select_from(scheduled_jobs)
            .where(scheduled_jobs.c.community_id == community_id)
        )
    assert jobs == 0
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.EndTheme(
            pb.EndThemeRequest(community_id=community_id, theme_id=created.theme.id),
            metadata=content.auth("olga"),
        )
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"weekday": 8}, "theme.weekday"),
        ({"local_time": "25:00"}, "theme.local_time"),
        ({"local_time": "next monday"}, "theme.local_time"),
        ({"time_zone": "Mars/Olympus"}, "theme.time_zone"),
        ({"kind": pb.POST_KIND_LINK}, "theme.kind"),
        ({"title": ""}, "theme.title"),
        ({"topic_id": str(uuid.uuid4())}, "theme.topic_id"),
    ],
)
async def test_bad_themes_are_refused_naming_the_field_and_change_nothing(
    content: RunningService, fields: dict[str, Any], field: str
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "olga", Role.ADMIN)
    await grant(content, community_id, "ada", Role.MEMBER)
    before = await snapshot(content, metadata)
    stub = pb_grpc.ContentServiceStub(content.channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateTheme(
            pb.CreateThemeRequest(community_id=community_id, theme=_theme(_soon(60), **fields)),
            metadata=content.auth("olga"),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)
    with pytest.raises(grpc.aio.AioRpcError) as member:
        await stub.CreateTheme(
            pb.CreateThemeRequest(community_id=community_id, theme=_theme(_soon(60))),
            metadata=content.auth("ada"),
        )
    assert member.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert changed_tables(before, await snapshot(content, metadata)) == []
