"""gRPC edge of the members service: decode, validate, authorize, call, encode."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import AlreadyExists, NotFound
from services.kit.idempotency import IdempotencyKey, IdempotentWriter
from services.kit.validation import Violations
from services.members import domain
from services.members.store.repository import CommunityRepository
from services.members.store.tables import idempotency_keys
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MembersService"].full_name


class MembersApi(pb_grpc.MembersServiceServicer):
    def __init__(self, database: Database) -> None:
        self.database = database
        self.idempotent = IdempotentWriter(database, idempotency_keys)

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
            return pb.CreateCommunityResponse(community=_to_proto(community))

        key = IdempotencyKey(caller.user_id, "CreateCommunity", request.request_id)
        return await self.idempotent.run(key, request, pb.CreateCommunityResponse, create)

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
