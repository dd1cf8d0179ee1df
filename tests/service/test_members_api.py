"""The members service's first capability: communities, created and read over gRPC."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select

from services.members.store.tables import communities, memberships
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from tests.support.errors import field_violations
from tests.support.members import refused
from tests.support.services import RunningService

pytestmark = pytest.mark.service


def _stub(members: RunningService) -> pb_grpc.MembersServiceStub:
    return pb_grpc.MembersServiceStub(members.channel)


async def _count(members: RunningService) -> tuple[int, int]:
    async with members.deps.database.read() as session:
        community_rows = await session.scalar(select(func.count()).select_from(communities))
        membership_rows = await session.scalar(select(func.count()).select_from(memberships))
    return int(community_rows or 0), int(membership_rows or 0)


def _unique_name() -> str:
    return f"English Club {uuid.uuid4().hex[:8]}"


async def test_creator_owns_the_community_and_reads_it_back(members: RunningService) -> None:
    name = _unique_name()
    created = await _stub(members).CreateCommunity(
        pb.CreateCommunityRequest(
            name=name,
            topic="english",
            mission="Speak every day",
            tags=["speaking", "ielts"],
            join_policy=pb.JOIN_POLICY_APPROVAL,
        ),
        metadata=members.auth("olivia"),
    )
    community = created.community
    assert community.owner_user_id == "olivia"
    assert community.slug == name.lower().replace(" ", "-")
    assert community.visibility == pb.VISIBILITY_PUBLIC
    assert community.join_policy == pb.JOIN_POLICY_APPROVAL
    assert list(community.tags) == ["ielts", "speaking"]
    assert community.version == 1

    fetched = await _stub(members).GetCommunity(
        pb.GetCommunityRequest(community_id=community.id), metadata=members.auth("someone-else")
    )
    assert fetched.community == community
    assert await _count(members) == (1, 1)


async def test_private_community_is_not_found_for_outsiders(members: RunningService) -> None:
    created = await _stub(members).CreateCommunity(
        pb.CreateCommunityRequest(
            name=_unique_name(), topic="exams", visibility=pb.VISIBILITY_PRIVATE
        ),
        metadata=members.auth("owner"),
    )
    community_id = created.community.id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stub(members).GetCommunity(
            pb.GetCommunityRequest(community_id=community_id), metadata=members.auth("outsider")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    owner_view = await _stub(members).GetCommunity(
        pb.GetCommunityRequest(community_id=community_id), metadata=members.auth("owner")
    )
    assert owner_view.community.id == community_id
    operator_view = await _stub(members).GetCommunity(
        pb.GetCommunityRequest(community_id=community_id),
        metadata=members.auth("ops", operator=True),
    )
    assert operator_view.community.id == community_id


async def test_retry_with_same_request_id_creates_one_community(members: RunningService) -> None:
    request = pb.CreateCommunityRequest(request_id="create-1", name=_unique_name(), topic="reading")
    first = await _stub(members).CreateCommunity(request, metadata=members.auth("olivia"))
    second = await _stub(members).CreateCommunity(request, metadata=members.auth("olivia"))
    assert first == second
    assert await _count(members) == (1, 1)


async def test_taken_slug_is_already_exists(members: RunningService) -> None:
    name = _unique_name()
    await _stub(members).CreateCommunity(
        pb.CreateCommunityRequest(name=name, topic="english"), metadata=members.auth("a")
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stub(members).CreateCommunity(
            pb.CreateCommunityRequest(name=name, topic="english"), metadata=members.auth("b")
        )
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "choose another slug" in (caught.value.details() or "")
    assert await _count(members) == (1, 1)


async def test_missing_fields_are_named_and_nothing_is_written(members: RunningService) -> None:
    # An enum outside the contract is refused at the edge, before the handler's own rules.
    undefined = await refused(
        _stub(members).CreateCommunity(
            pb.CreateCommunityRequest(name="n", topic="t", visibility=pb.Visibility.ValueType(9)),
            metadata=members.auth("olivia"),
        )
    )
    assert set(field_violations(undefined)) == {"visibility"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stub(members).CreateCommunity(
            pb.CreateCommunityRequest(name=" ", slug="Bad Slug!", tags=["x y"]),
            metadata=members.auth("olivia"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    fields = {violation.field for violation in bad_request.field_violations}
    assert fields == {"name", "topic", "slug", "tags[0]"}
    assert await _count(members) == (0, 0)


async def test_malformed_or_unknown_community_id(members: RunningService) -> None:
    for community_id, code in (
        ("not-a-uuid", grpc.StatusCode.INVALID_ARGUMENT),
        (str(uuid.uuid4()), grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _stub(members).GetCommunity(
                pb.GetCommunityRequest(community_id=community_id), metadata=members.auth("a")
            )
        assert caught.value.code() == code


async def test_create_without_token_is_unauthenticated(members: RunningService) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stub(members).CreateCommunity(
            pb.CreateCommunityRequest(name=_unique_name(), topic="english")
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await _count(members) == (0, 0)
