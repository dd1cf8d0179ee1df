"""Data rights outside members: content answers ExportMyData and EraseMyData for its own
records (the kit's handlers, shared by events, billing and analytics), and an erasure
decided in members reaches content through MemberErased on the bus."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from services.content.app import SPEC as CONTENT
from services.content.settings import ContentSettings
from services.kit.access import Role
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.content.v1 import content_service_pb2_grpc as content_grpc
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.support.access import grant
from tests.support.services import RunningService, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service


async def _post(content: RunningService, community_id: str, user: str, title: str) -> str:
    posts = content_grpc.ContentServiceStub(content.channel)
    reply = await posts.CreatePost(
        content_pb.CreatePostRequest(
            community_id=community_id,
            kind=content_pb.POST_KIND_ARTICLE,
            title=title,
            body="Notes on chapter 3",
        ),
        metadata=content.auth(user),
    )
    return str(reply.post.id)


async def _export(content: RunningService, community_id: str, user: str) -> dict[str, Any]:
    posts = content_grpc.ContentServiceStub(content.channel)
    reply = await posts.ExportMyData(
        content_pb.ExportMyDataRequest(community_id=community_id), metadata=content.auth(user)
    )
    assert reply.content_type == "application/json"
    document: dict[str, Any] = json.loads(reply.document)
    return document


@pytest.fixture
async def content(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        CONTENT,
        ContentSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
        consumers="external",
    ) as running:
        yield running


async def test_erasing_in_content_removes_the_authorship_of_ones_posts_alone(
    content: RunningService,
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "ada", Role.MEMBER)
    await grant(content, community_id, "bo", Role.MEMBER)
    mine = await _post(content, community_id, "ada", "Ada's notes")
    theirs = await _post(content, community_id, "bo", "Bo's notes")
    posts = content_grpc.ContentServiceStub(content.channel)

    exported = await _export(content, community_id, "ada")
    assert [post["id"] for post in exported["posts"]] == [mine]
    assert exported["posts"][0]["title"] == "Ada's notes"
    assert exported["standing"]["role"] == "member"

    unconfirmed = content_pb.EraseMyDataRequest(community_id=community_id, request_id="e-1")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await posts.EraseMyData(unconfirmed, metadata=content.auth("ada"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "confirm" in (refused.value.details() or "")

    erase = content_pb.EraseMyDataRequest(community_id=community_id, request_id="e-2", confirm=True)
    first = await posts.EraseMyData(erase, metadata=content.auth("ada"))
    again = await posts.EraseMyData(erase, metadata=content.auth("ada"))
    assert again.erase_time == first.erase_time

    kept = await posts.GetPost(
        content_pb.GetPostRequest(community_id=community_id, post_id=mine),
        metadata=content.auth("bo"),
    )
    assert kept.post.author_user_id == ""
    assert kept.post.body == "Notes on chapter 3"
    assert kept.post.version == 2
    other = await posts.GetPost(
        content_pb.GetPostRequest(community_id=community_id, post_id=theirs),
        metadata=content.auth("bo"),
    )
    assert other.post.author_user_id == "bo"
    assert (await _export(content, community_id, "ada"))["posts"] == []
    assert len((await _export(content, community_id, "bo"))["posts"]) == 1


async def test_an_erasure_decided_in_members_reaches_content_through_the_bus(
    database_url: str, second_database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "data_dir": data_dir}
    async with (
        running_service(MEMBERS, MembersSettings, database_url=database_url, **common) as members,
        running_service(
            CONTENT, ContentSettings, database_url=second_database_url, **common
        ) as content,
    ):
        club = members_grpc.MembersServiceStub(members.channel)
        posts = content_grpc.ContentServiceStub(content.channel)
        community = (
            await club.CreateCommunity(
                members_pb.CreateCommunityRequest(name=f"Erase {uuid.uuid4().hex[:6]}", topic="t"),
                metadata=members.auth("owner"),
            )
        ).community
        await club.JoinCommunity(
            members_pb.JoinCommunityRequest(community_id=community.id),
            metadata=members.auth("ada"),
        )
        written: list[str] = []

        async def posted() -> bool:
            try:
                written.append(await _post(content, community.id, "ada", "Week one"))
            except grpc.aio.AioRpcError:
                return False
            return True

        await eventually(posted, "ada may post once her join reaches content")

        await club.EraseMyData(
            members_pb.EraseMyDataRequest(community_id=community.id, confirm=True),
            metadata=members.auth("ada"),
        )

        async def anonymous() -> bool:
            read = await posts.GetPost(
                content_pb.GetPostRequest(community_id=community.id, post_id=written[0]),
                metadata=content.auth("owner"),
            )
            return bool(read.post.author_user_id == "")

        await eventually(anonymous, "the post loses its author")
        exported = await _export(content, community.id, "ada")
        assert exported["posts"] == []
        # Content's copy of her standing, as members left it: gone from the community.
        assert exported["standing"]["active"] is False


async def test_erasing_with_erase_text_blanks_what_one_wrote_and_its_history(
    content: RunningService,
) -> None:
    community_id = str(uuid.uuid4())
    await grant(content, community_id, "cy", Role.MEMBER)
    await grant(content, community_id, "mo", Role.MODERATOR)
    posts = content_grpc.ContentServiceStub(content.channel)
    post_id = await _post(content, community_id, "cy", "My address is 1 Main St")
    await posts.UpdatePost(
        content_pb.UpdatePostRequest(
            community_id=community_id,
            post_id=post_id,
            post=content_pb.Post(body="Moved: call me on 555-0100"),
            update_mask=FieldMask(paths=["body"]),
        ),
        metadata=content.auth("cy"),
    )

    await posts.EraseMyData(
        content_pb.EraseMyDataRequest(community_id=community_id, confirm=True, erase_text=True),
        metadata=content.auth("cy"),
    )

    kept = (
        await posts.GetPost(
            content_pb.GetPostRequest(community_id=community_id, post_id=post_id),
            metadata=content.auth("mo"),
        )
    ).post
    assert (kept.author_user_id, kept.title, kept.body) == ("", "", "")
    history = await posts.ListPostRevisions(
        content_pb.ListPostRevisionsRequest(community_id=community_id, post_id=post_id),
        metadata=content.auth("mo"),
    )
    [revision] = history.revisions
    assert revision.editor_user_id == ""
    assert "555-0100" not in str(revision)  # the whole number: ids are hex and may hold "555"
    assert "Main St" not in str(revision)
