"""gRPC edge of the members service: decode, validate, authorize, call, encode."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import AlreadyExists, DomainError, FailedPrecondition, NotFound
from services.kit.idempotency import IdempotencyKey, IdempotentWriter
from services.kit.validation import Violations
from services.members import domain
from services.members.store.events import MemberEvents
from services.members.store.repository import CommunityRepository
from services.members.store.tables import idempotency_keys
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MembersService"].full_name


class MembersApi(pb_grpc.MembersServiceServicer):
    def __init__(self, database: Database, on_commit: Callable[[], None] = lambda: None) -> None:
        self.database = database
        self.idempotent = IdempotentWriter(database, idempotency_keys)
        # Called after a transaction that staged events commits: wakes the relay.
        self.on_commit = on_commit

    async def CreateCommunity(
        self, request: pb.CreateCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCommunityResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.text("name", request.name, max_length=120)
        problems.text("topic", request.topic, max_length=80)
        problems.text("mission", request.mission, required=False, max_length=2000)
        problems.text("audience", request.audience, required=False, max_length=500)
        problems.tags("tags", list(request.tags))
        if request.slug and not domain.SLUG_PATTERN.fullmatch(request.slug):
            problems.add("slug", "must be 1-64 lowercase ASCII letters, digits or inner '-'")
        problems.enum("visibility", request.visibility, domain.Visibility, "Visibility")
        problems.enum("join_policy", request.join_policy, domain.JoinPolicy, "JoinPolicy")
        problems.raise_if_any()

        async def create(session: AsyncSession) -> pb.CreateCommunityResponse:
            communities = CommunityRepository(session)
            community, owner = domain.new_community(
                name=request.name,
                topic=request.topic,
                owner_user_id=caller.user_id,
                slug=request.slug,
                mission=request.mission,
                audience=request.audience,
                tags=list(request.tags),
                visibility=domain.Visibility(request.visibility) if request.visibility else None,
                join_policy=domain.JoinPolicy(request.join_policy) if request.join_policy else None,
            )
            if await communities.slug_taken(community.slug):
                raise AlreadyExists(
                    f"a community with slug {community.slug!r} already exists; choose another slug"
                )
            await communities.add(community)
            await communities.add_membership(owner)
            published = MemberEvents(session)
            await published.community_created(community)
            await published.member_joined(owner)
            return pb.CreateCommunityResponse(community=_to_proto(community))

        key = IdempotencyKey(caller.user_id, "CreateCommunity", request.request_id)
        response = await self.idempotent.run(key, request, pb.CreateCommunityResponse, create)
        self.on_commit()
        return response

    async def GetCommunity(
        self, request: pb.GetCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCommunityResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        problems.raise_if_any()
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await communities.get(request.community_id)
            visible = community is not None and (
                community.visible_to_outsiders()
                or caller.operator
                or await communities.membership(community.id, caller.user_id) is not None
            )
        if community is None or not visible:
            # A private community the caller does not belong to is indistinguishable from
            # one that does not exist: its existence is not the caller's to learn.
            raise NotFound(f"community {request.community_id} not found")
        return pb.GetCommunityResponse(community=_to_proto(community))

    async def JoinCommunity(
        self, request: pb.JoinCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinCommunityResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.raise_if_any()

        async def join(session: AsyncSession) -> pb.JoinCommunityResponse:
            communities = CommunityRepository(session)
            community = await communities.get(request.community_id)
            current = (
                await communities.membership(request.community_id, caller.user_id)
                if community
                else None
            )
            if community is None or not (
                community.visible_to_outsiders() or (current is not None and current.active)
            ):
                raise NotFound(f"community {request.community_id} not found")
            membership = _apply(lambda: domain.join(community, current, caller.user_id))
            await communities.save_membership(membership)
            await MemberEvents(session).member_joined(membership)
            return pb.JoinCommunityResponse(membership=_membership_to_proto(membership))

        key = IdempotencyKey(caller.user_id, "JoinCommunity", request.request_id)
        response = await self.idempotent.run(key, request, pb.JoinCommunityResponse, join)
        self.on_commit()
        return response

    async def LeaveCommunity(
        self, request: pb.LeaveCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.LeaveCommunityResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.raise_if_any()

        async def leave(session: AsyncSession) -> pb.LeaveCommunityResponse:
            communities = CommunityRepository(session)
            current = await communities.membership(request.community_id, caller.user_id)
            membership = _apply(lambda: domain.leave(current, request.community_id, caller.user_id))
            await communities.save_membership(membership)
            await MemberEvents(session).member_left(membership)
            return pb.LeaveCommunityResponse(version=membership.version)

        key = IdempotencyKey(caller.user_id, "LeaveCommunity", request.request_id)
        response = await self.idempotent.run(key, request, pb.LeaveCommunityResponse, leave)
        self.on_commit()
        return response


_MEMBERSHIP_ERRORS: dict[str, type[DomainError]] = {
    "already_member": AlreadyExists,
    "not_open": FailedPrecondition,
    "not_member": NotFound,
    "owner_cannot_leave": FailedPrecondition,
}


def _apply(change: Callable[[], domain.Membership]) -> domain.Membership:
    try:
        return change()
    except domain.MembershipError as error:
        raise _MEMBERSHIP_ERRORS[error.code](error.message) from None


def _membership_to_proto(membership: domain.Membership) -> pb.Membership:
    joined = Timestamp()
    joined.FromDatetime(membership.joined_at)
    return pb.Membership(
        community_id=membership.community_id,
        user_id=membership.user_id,
        role=pb.Role.ValueType(membership.role),
        join_time=joined,
        version=membership.version,
    )


def _to_proto(community: domain.Community) -> pb.Community:
    created = Timestamp()
    created.FromDatetime(community.created_at)
    return pb.Community(
        id=community.id,
        name=community.name,
        slug=community.slug,
        topic=community.topic,
        mission=community.mission,
        audience=community.audience,
        tags=community.tags,
        visibility=pb.Visibility.ValueType(community.visibility),
        join_policy=pb.JoinPolicy.ValueType(community.join_policy),
        owner_user_id=community.owner_user_id,
        create_time=created,
        version=community.version,
    )
