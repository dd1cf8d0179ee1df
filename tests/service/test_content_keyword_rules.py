"""Keyword rules through the gRPC API, on SQLite and PostgreSQL: moderators watch words and
phrases; a post or comment holding one is refused when written or edited, naming the field,
with nothing written; Chinese phrases match inside a run of characters, other phrases as
whole words, whatever the case or width; one community's rules never touch another's; the
rules' changes leave as facts."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import func, select

from services.content.store.tables import comments, outbox, posts
from services.kit.access import Role
from studyhall.content.v1 import content_events_pb2 as events
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.errors import field_violations
from tests.support.services import RunningService

pytestmark = pytest.mark.service


class Community:
    def __init__(self, running: RunningService) -> None:
        self.running = running
        self.id = str(uuid.uuid4())
        self.stub = pb_grpc.ContentServiceStub(running.channel)

    async def setup(self) -> Community:
        for user, role in [("mo", Role.MODERATOR), ("bo", Role.MEMBER)]:
            await grant(self.running, self.id, user, role)
        return self

    def auth(self, user: str) -> list[tuple[str, str]]:
        return self.running.auth(user)

    async def watch(self, phrase: str) -> pb.KeywordRule:
        reply: pb.AddKeywordRuleResponse = await self.stub.AddKeywordRule(
            pb.AddKeywordRuleRequest(community_id=self.id, phrase=phrase), metadata=self.auth("mo")
        )
        return reply.rule

    async def post(self, **fields: Any) -> pb.Post:
        values: dict[str, Any] = {"kind": pb.POST_KIND_ARTICLE, "title": "Day 1", "body": "Notes."}
        values.update(fields)
        reply: pb.CreatePostResponse = await self.stub.CreatePost(
            pb.CreatePostRequest(community_id=self.id, **values), metadata=self.auth("bo")
        )
        return reply.post

    async def count(self, table: Any) -> int:
        async with self.running.deps.database.read() as session:
            found = await session.scalar(
                select(func.count()).select_from(table).where(table.c.community_id == self.id)
            )
        return int(found or 0)


async def refused(call: Any) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    return field_violations(error.value)


async def test_a_watched_word_refuses_posts_and_comments_naming_the_field(
    content: RunningService,
) -> None:
    here = await Community(content).setup()
    await here.watch("代写")
    await here.watch("Casino")

    assert "body" in await refused(here.post(body="承接论文代写，价格优惠"))  # noqa: RUF001
    assert "title" in await refused(here.post(title="Best CASINO bonus"))
    assert "tags" in await refused(here.post(tags=["ｃａｓｉｎｏ"]))  # noqa: RUF001
    assert await here.count(posts) == 0

    # Whole words for Latin phrases: "casinos" and "occasion" are other words.
    kept = await here.post(title="Casinos in history: an occasion to read", body="写作练习")
    assert "post.body" in await refused(
        here.stub.UpdatePost(
            pb.UpdatePostRequest(
                community_id=here.id,
                post_id=kept.id,
                post=pb.Post(body="找人代写作业"),
                update_mask=FieldMask(paths=["body"]),
            ),
            metadata=here.auth("bo"),
        )
    )
    assert "body" in await refused(
        here.stub.AddComment(
            pb.AddCommentRequest(community_id=here.id, post_id=kept.id, body="代写私聊"),
            metadata=here.auth("bo"),
        )
    )
    assert await here.count(comments) == 0


async def test_rules_are_listed_removed_and_leave_facts(content: RunningService) -> None:
    here = await Community(content).setup()
    first = await here.watch("代写")
    second = await here.watch("casino")
    listed = await here.stub.ListKeywordRules(
        pb.ListKeywordRulesRequest(community_id=here.id), metadata=here.auth("mo")
    )
    assert [rule.phrase for rule in listed.rules] == ["代写", "casino"]

    await here.stub.RemoveKeywordRule(
        pb.RemoveKeywordRuleRequest(community_id=here.id, rule_id=first.rule_id),
        metadata=here.auth("mo"),
    )
    await here.post(body="代写 is fine again")
    async with content.deps.database.read() as session:
        types = list(
            await session.scalars(
                select(outbox.c.event_type)
                .where(outbox.c.community_id == here.id, outbox.c.event_type.like("%Keyword%"))
                .order_by(outbox.c.seq)
            )
        )
    added, removed = (
        events.KeywordRuleAdded.DESCRIPTOR.full_name,
        events.KeywordRuleRemoved.DESCRIPTOR.full_name,
    )
    assert types == [added, added, removed]
    assert second.created_by_user_id == "mo"


async def test_rules_stay_in_their_community_and_refuse_repeats(content: RunningService) -> None:
    here = await Community(content).setup()
    elsewhere = await Community(content).setup()
    await here.watch("代写")
    await elsewhere.post(body="代写 is a word here")

    with pytest.raises(grpc.aio.AioRpcError) as repeated:
        await here.watch("代写 ")
    assert repeated.value.code() is grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as member:
        await here.stub.AddKeywordRule(
            pb.AddKeywordRuleRequest(community_id=here.id, phrase="spam"),
            metadata=here.auth("bo"),
        )
    assert member.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "phrase" in await refused(here.watch("？！"))  # noqa: RUF001
