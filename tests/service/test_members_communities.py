"""Positioning a community: edits that do not overwrite each other, archiving, and listings
that never show outsiders a private community."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from tests.support.errors import field_violations
from tests.support.services import RunningService

pytestmark = pytest.mark.service


def _stub(members: RunningService) -> pb_grpc.MembersServiceStub:
    return pb_grpc.MembersServiceStub(members.channel)


async def _create(members: RunningService, owner: str, **fields: object) -> pb.Community:
    fields.setdefault("name", f"Group {uuid.uuid4().hex[:8]}")
    fields.setdefault("topic", "english")
    reply = await _stub(members).CreateCommunity(
        pb.CreateCommunityRequest(**fields),  # type: ignore[arg-type]
        metadata=members.auth(owner),
    )
    community: pb.Community = reply.community
    return community


async def _update(
    members: RunningService, user: str, community: pb.Community, paths: list[str], etag: str = ""
) -> pb.Community:
    reply = await _stub(members).UpdateCommunity(
        pb.UpdateCommunityRequest(
            community=community, update_mask=FieldMask(paths=paths), etag=etag
        ),
        metadata=members.auth(user),
    )
    updated: pb.Community = reply.community
    return updated


async def test_owner_repositions_the_community_and_only_masked_fields_change(
    members: RunningService,
) -> None:
    created = await _create(members, "olga", mission="Read daily")
    change = pb.Community(
        id=created.id,
        mission="Read and discuss weekly",
        topic="ignored",
        tags=["books", "zh"],
        time_zone="Asia/Shanghai",
        locale="zh-Hans",
    )
    updated = await _update(
        members, "olga", change, ["mission", "tags", "time_zone", "locale"], created.etag
    )
    assert updated.mission == "Read and discuss weekly"
    assert updated.topic == created.topic
    assert list(updated.tags) == ["books", "zh"]
    assert (updated.time_zone, updated.locale) == ("Asia/Shanghai", "zh-Hans")
    assert updated.version == created.version + 1
    assert updated.etag != created.etag


async def test_concurrent_edit_with_a_stale_etag_is_refused(members: RunningService) -> None:
    created = await _create(members, "olga")
    await _update(
        members, "olga", pb.Community(id=created.id, mission="first"), ["mission"], created.etag
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _update(
            members,
            "olga",
            pb.Community(id=created.id, mission="second"),
            ["mission"],
            created.etag,
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "read it again" in (caught.value.details() or "")
    current = await _stub(members).GetCommunity(
        pb.GetCommunityRequest(community_id=created.id), metadata=members.auth("olga")
    )
    assert current.community.mission == "first"


async def test_bad_update_names_the_fields_and_changes_nothing(members: RunningService) -> None:
    created = await _create(members, "olga")
    # An enum outside the contract is refused at the edge, before the handler's own rules.
    with pytest.raises(grpc.aio.AioRpcError) as undefined:
        await _update(
            members,
            "olga",
            pb.Community(id=created.id, name="", visibility=pb.Visibility.ValueType(7)),
            ["name", "visibility"],
        )
    assert set(field_violations(undefined.value)) == {"community.visibility"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _update(
            members,
            "olga",
            pb.Community(id=created.id, name="", time_zone="Mars/Olympus"),
            ["name", "time_zone", "visibility", "owner_user_id"],
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = field_violations(caught.value)
    assert set(fields) == {
        "community.name",
        "community.time_zone",
        "community.visibility",
        "update_mask",
    }
    current = await _stub(members).GetCommunity(
        pb.GetCommunityRequest(community_id=created.id), metadata=members.auth("olga")
    )
    assert current.community == created


async def test_plain_member_cannot_edit_and_outsider_cannot_see_a_private_one(
    members: RunningService,
) -> None:
    created = await _create(members, "olga")
    await _stub(members).JoinCommunity(
        pb.JoinCommunityRequest(community_id=created.id), metadata=members.auth("max")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _update(members, "max", pb.Community(id=created.id, mission="mine"), ["mission"])
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "admin" in (caught.value.details() or "")

    private = await _create(members, "olga", visibility=pb.VISIBILITY_PRIVATE)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _update(members, "max", pb.Community(id=private.id, mission="x"), ["mission"])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_archived_community_takes_no_members_and_no_changes(members: RunningService) -> None:
    created = await _create(members, "olga")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stub(members).ArchiveCommunity(
            pb.ArchiveCommunityRequest(community_id=created.id), metadata=members.auth("max")
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    archived = await _stub(members).ArchiveCommunity(
        pb.ArchiveCommunityRequest(community_id=created.id, etag=created.etag),
        metadata=members.auth("olga"),
    )
    assert archived.community.HasField("archive_time")
    for call in (
        _stub(members).JoinCommunity(
            pb.JoinCommunityRequest(community_id=created.id), metadata=members.auth("max")
        ),
        _stub(members).UpdateCommunity(
            pb.UpdateCommunityRequest(
                community=pb.Community(id=created.id, mission="x"),
                update_mask=FieldMask(paths=["mission"]),
            ),
            metadata=members.auth("olga"),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "archived" in (caught.value.details() or "")


async def test_listing_pages_through_what_the_caller_may_see(members: RunningService) -> None:
    topic = f"topic-{uuid.uuid4().hex[:8]}"
    public = [await _create(members, "olga", topic=topic, tags=["ielts"]) for _ in range(5)]
    private = await _create(members, "olga", topic=topic, visibility=pb.VISIBILITY_PRIVATE)
    unlisted = await _create(members, "olga", topic=topic, visibility=pb.VISIBILITY_UNLISTED)
    other_topic = await _create(members, "olga", tags=["ielts"])

    async def listed(user: str, **query: object) -> list[str]:
        ids: list[str] = []
        token = ""
        while True:
            reply = await _stub(members).ListCommunities(
                pb.ListCommunitiesRequest(page_size=2, page_token=token, **query),  # type: ignore[arg-type]
                metadata=members.auth(user),
            )
            assert len(reply.communities) <= 2
            ids.extend(c.id for c in reply.communities)
            token = reply.next_page_token
            if not token:
                return ids

    newest_first = [c.id for c in reversed(public)]
    assert await listed("stranger", topic=topic) == newest_first
    assert set(await listed("olga", topic=topic)) == {*newest_first, private.id, unlisted.id}
    by_tag = await listed("stranger", tag="ielts")
    assert set(newest_first) <= set(by_tag)
    assert other_topic.id in by_tag
    assert private.id not in await listed("stranger", tag="ielts")


async def test_page_token_of_another_query_is_refused(members: RunningService) -> None:
    topic = f"topic-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        await _create(members, "olga", topic=topic)
    first = await _stub(members).ListCommunities(
        pb.ListCommunitiesRequest(topic=topic, page_size=1), metadata=members.auth("a")
    )
    assert first.next_page_token
    for request in (
        pb.ListCommunitiesRequest(topic="other", page_token=first.next_page_token),
        pb.ListCommunitiesRequest(topic=topic, page_token="garbage!"),
        pb.ListCommunitiesRequest(topic=topic, page_size=1000),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _stub(members).ListCommunities(request, metadata=members.auth("a"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
