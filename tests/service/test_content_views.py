"""Views through the gRPC API, on SQLite and PostgreSQL: a read of a published post records
ContentViewed once per member, post and local day of the community, however often and however
concurrently the member reads it, also after Redis is flushed (the database key decides);
drafts, authors' own reads and refused reads record nothing; the view is in the member's
data export."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from sqlalchemy import func, select, update

from services.content.store.tables import access, outbox, post_views
from services.kit.access import Role
from studyhall.content.v1 import content_events_pb2 as events
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.services import RunningService

pytestmark = pytest.mark.service


class Community:
    def __init__(self, running: RunningService) -> None:
        self.running = running
        self.id = str(uuid.uuid4())
        self.stub = pb_grpc.ContentServiceStub(running.channel)

    async def setup(self, time_zone: str = "") -> Community:
        for user, role in [("mo", Role.MODERATOR), ("bo", Role.MEMBER), ("cy", Role.MEMBER)]:
            await grant(self.running, self.id, user, role)
        if time_zone:
            async with self.running.deps.database.write() as session:
                await session.execute(
                    update(access.communities)
                    .where(access.communities.c.community_id == self.id)
                    .values(time_zone=time_zone)
                )
        return self

    async def post(self, **fields: Any) -> str:
        values: dict[str, Any] = {"kind": pb.POST_KIND_ARTICLE, "title": "Day 1", "body": "Notes."}
        values.update(fields)
        reply = await self.stub.CreatePost(
            pb.CreatePostRequest(community_id=self.id, **values),
            metadata=self.running.auth("bo"),
        )
        return str(reply.post.id)

    async def read(self, post_id: str, user: str) -> None:
        await self.stub.GetPost(
            pb.GetPostRequest(community_id=self.id, post_id=post_id),
            metadata=self.running.auth(user),
        )

    async def viewed(self) -> list[events.ContentViewed]:
        async with self.running.deps.database.read() as session:
            rows = await session.execute(
                select(outbox.c.payload)
                .where(
                    outbox.c.community_id == self.id,
                    outbox.c.event_type == events.ContentViewed.DESCRIPTOR.full_name,
                )
                .order_by(outbox.c.seq)
            )
            return [events.ContentViewed.FromString(payload) for (payload,) in rows]

    async def view_rows(self) -> int:
        async with self.running.deps.database.read() as session:
            found = await session.scalar(
                select(func.count()).where(post_views.c.community_id == self.id)
            )
        return int(found or 0)

    async def forget_in_redis(self) -> None:
        async def flush(client: Any) -> None:
            async for key in client.scan_iter(match="studyhall:content:viewed:*"):
                await client.delete(key)

        await self.running.deps.redis.call(flush, None)


async def test_a_member_reading_a_post_often_and_at_once_counts_one_view_a_day(
    content: RunningService,
) -> None:
    here = await Community(content).setup(time_zone="Asia/Shanghai")
    post_id = await here.post()
    await here.read(post_id, "cy")
    await asyncio.gather(*(here.read(post_id, "cy") for _ in range(12)))
    await here.read(post_id, "mo")

    [first, second] = await here.viewed()
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert (first.user_id, first.post_id, first.local_date) == ("cy", post_id, today)
    assert (second.user_id, second.local_date) == ("mo", today)
    assert await here.view_rows() == 2


async def test_a_flushed_redis_still_counts_each_view_once(content: RunningService) -> None:
    here = await Community(content).setup()
    post_id = await here.post()
    await here.read(post_id, "cy")
    await here.forget_in_redis()
    await asyncio.gather(*(here.read(post_id, "cy") for _ in range(5)))
    assert [view.user_id for view in await here.viewed()] == ["cy"]


async def test_drafts_own_posts_and_refused_reads_record_no_view(content: RunningService) -> None:
    here = await Community(content).setup()
    draft = await here.post(draft=True)
    await here.read(draft, "bo")
    published = await here.post()
    await here.read(published, "bo")  # its author
    paid = await here.post(title="Lesson one")
    await here.stub.SetPostProduct(
        pb.SetPostProductRequest(community_id=here.id, post_id=paid, product_id="prod-course"),
        metadata=content.auth("bo"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await here.read(paid, "cy")
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert await here.viewed() == []


async def test_a_members_views_are_in_their_export_and_leave_with_erasure(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    post_id = await here.post()
    await here.read(post_id, "cy")
    exported = await here.stub.ExportMyData(
        pb.ExportMyDataRequest(community_id=here.id), metadata=content.auth("cy")
    )
    sections = json.loads(exported.document)
    assert [view["post_id"] for view in sections["post_views"]] == [post_id]
    await here.stub.EraseMyData(
        pb.EraseMyDataRequest(community_id=here.id, confirm=True), metadata=content.auth("cy")
    )
    assert await here.view_rows() == 0
