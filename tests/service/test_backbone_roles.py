"""Roles decided in members reach the other services through the backbone: a new member
may post in content, a muted one may not, a promoted one may schedule in events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.content.app import SPEC as CONTENT
from services.content.settings import ContentSettings
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.content.v1 import content_service_pb2_grpc as content_grpc
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service


@pytest.fixture
async def services(
    database_url: str, second_database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[tuple[RunningService, RunningService]]:
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "data_dir": data_dir}
    async with (
        running_service(MEMBERS, MembersSettings, database_url=database_url, **common) as members,
        running_service(
            CONTENT, ContentSettings, database_url=second_database_url, **common
        ) as content,
    ):
        yield members, content


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_membership_and_mutes_decided_in_members_govern_posting_in_content(
    services: tuple[RunningService, RunningService],
) -> None:
    members, content = services
    club = members_grpc.MembersServiceStub(members.channel)
    posts = content_grpc.ContentServiceStub(content.channel)
    community = (
        await club.CreateCommunity(
            members_pb.CreateCommunityRequest(name=f"Roles {uuid.uuid4().hex[:6]}", topic="t"),
            metadata=members.auth("owner"),
        )
    ).community

    async def post_status(user: str) -> grpc.StatusCode:
        try:
            await posts.CreatePost(
                content_pb.CreatePostRequest(
                    community_id=community.id,
                    kind=content_pb.POST_KIND_ARTICLE,
                    title="Notes",
                    body="Chapter 3",
                ),
                metadata=content.auth(user),
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    await _eventually(lambda: _is(post_status("owner"), grpc.StatusCode.OK), "owner posts")
    assert await post_status("newbie") == grpc.StatusCode.PERMISSION_DENIED
    await club.JoinCommunity(
        members_pb.JoinCommunityRequest(community_id=community.id), metadata=members.auth("newbie")
    )
    await _eventually(lambda: _is(post_status("newbie"), grpc.StatusCode.OK), "member posts")

    await club.ModerateMember(
        members_pb.ModerateMemberRequest(
            community_id=community.id,
            user_id="newbie",
            action=members_pb.MODERATION_ACTION_MUTE,
            reason="spam",
        ),
        metadata=members.auth("owner"),
    )
    await _eventually(
        lambda: _is(post_status("newbie"), grpc.StatusCode.PERMISSION_DENIED), "muted refused"
    )
    await club.ModerateMember(
        members_pb.ModerateMemberRequest(
            community_id=community.id, user_id="newbie", action=members_pb.MODERATION_ACTION_UNMUTE
        ),
        metadata=members.auth("owner"),
    )
    await _eventually(lambda: _is(post_status("newbie"), grpc.StatusCode.OK), "unmuted posts")
    await club.ModerateMember(
        members_pb.ModerateMemberRequest(
            community_id=community.id,
            user_id="newbie",
            action=members_pb.MODERATION_ACTION_BAN,
            reason="again",
        ),
        metadata=members.auth("owner"),
    )
    await _eventually(
        lambda: _is(post_status("newbie"), grpc.StatusCode.PERMISSION_DENIED), "banned refused"
    )


async def _is(status: Awaitable[grpc.StatusCode], expected: grpc.StatusCode) -> bool:
    return bool(await status == expected)
