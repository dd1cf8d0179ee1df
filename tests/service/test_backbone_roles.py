"""Roles decided in members reach the other services through the backbone: a new member
may post in content, a muted one may not, a promoted one may schedule in events; the levels
a community sets gate links, and an archived community takes no new posts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
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
from studyhall.members.v1 import recognition_service_pb2 as recognition_pb
from studyhall.members.v1 import recognition_service_pb2_grpc as recognition_grpc
from tests.support.services import RunningService, running_service
from tests.support.waiting import eventually

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

    await eventually(lambda: _is(post_status("owner"), grpc.StatusCode.OK), "owner posts")
    assert await post_status("newbie") == grpc.StatusCode.PERMISSION_DENIED
    await club.JoinCommunity(
        members_pb.JoinCommunityRequest(community_id=community.id), metadata=members.auth("newbie")
    )
    await eventually(lambda: _is(post_status("newbie"), grpc.StatusCode.OK), "member posts")

    await club.ModerateMember(
        members_pb.ModerateMemberRequest(
            community_id=community.id,
            user_id="newbie",
            action=members_pb.MODERATION_ACTION_MUTE,
            reason="spam",
        ),
        metadata=members.auth("owner"),
    )
    await eventually(
        lambda: _is(post_status("newbie"), grpc.StatusCode.PERMISSION_DENIED), "muted refused"
    )
    await club.ModerateMember(
        members_pb.ModerateMemberRequest(
            community_id=community.id, user_id="newbie", action=members_pb.MODERATION_ACTION_UNMUTE
        ),
        metadata=members.auth("owner"),
    )
    await eventually(lambda: _is(post_status("newbie"), grpc.StatusCode.OK), "unmuted posts")
    await club.ModerateMember(
        members_pb.ModerateMemberRequest(
            community_id=community.id,
            user_id="newbie",
            action=members_pb.MODERATION_ACTION_BAN,
            reason="again",
        ),
        metadata=members.auth("owner"),
    )
    await eventually(
        lambda: _is(post_status("newbie"), grpc.StatusCode.PERMISSION_DENIED), "banned refused"
    )


async def _is(status: Awaitable[grpc.StatusCode], expected: grpc.StatusCode) -> bool:
    return bool(await status == expected)


async def test_levels_and_archiving_decided_in_members_govern_content_through_the_bus(
    services: tuple[RunningService, RunningService],
) -> None:
    members, content = services
    club = members_grpc.MembersServiceStub(members.channel)
    recognition = recognition_grpc.RecognitionServiceStub(members.channel)
    posts = content_grpc.ContentServiceStub(content.channel)
    community = (
        await club.CreateCommunity(
            members_pb.CreateCommunityRequest(name=f"Levels {uuid.uuid4().hex[:6]}", topic="t"),
            metadata=members.auth("owner"),
        )
    ).community
    await club.JoinCommunity(
        members_pb.JoinCommunityRequest(community_id=community.id), metadata=members.auth("ada")
    )

    published: list[str] = []

    async def link_status(user: str) -> grpc.StatusCode:
        try:
            reply = await posts.CreatePost(
                content_pb.CreatePostRequest(
                    community_id=community.id,
                    kind=content_pb.POST_KIND_ARTICLE,
                    title="Reading list",
                    body="Start at https://example.org/chapter-1",
                ),
                metadata=content.auth(user),
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        published.append(reply.post.id)
        return grpc.StatusCode.OK

    # Links are open to every member until a level names post_links.
    await eventually(lambda: _is(link_status("ada"), grpc.StatusCode.OK), "member links")
    await recognition.SetLevels(
        recognition_pb.SetLevelsRequest(
            community_id=community.id,
            levels=[
                recognition_pb.Level(min_points=0),
                # Far above what a few posts earn (each earns its author 2 points).
                recognition_pb.Level(min_points=500, privileges=["post_links"]),
            ],
        ),
        metadata=members.auth("owner"),
    )
    await eventually(
        lambda: _is(link_status("ada"), grpc.StatusCode.PERMISSION_DENIED), "links gated"
    )
    await recognition.AwardPoints(
        recognition_pb.AwardPointsRequest(
            community_id=community.id, user_id="ada", amount=500, reason="good notes"
        ),
        metadata=members.auth("owner"),
    )
    await eventually(lambda: _is(link_status("ada"), grpc.StatusCode.OK), "level 2 links")

    await club.ArchiveCommunity(
        members_pb.ArchiveCommunityRequest(community_id=community.id, etag=community.etag),
        metadata=members.auth("owner"),
    )
    await eventually(
        lambda: _is(link_status("owner"), grpc.StatusCode.FAILED_PRECONDITION), "archived"
    )
    # Archived is read-only, not gone.
    read = await posts.GetPost(
        content_pb.GetPostRequest(community_id=community.id, post_id=published[-1]),
        metadata=content.auth("ada"),
    )
    assert read.post.id == published[-1]
