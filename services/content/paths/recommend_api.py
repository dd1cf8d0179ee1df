"""The gRPC handler that aims a learning path at a segment of members (docs/decisions/0015:
a snapshot taken with the caller's token); members find what was recommended to them with
ListPaths."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.paths import domain
from services.content.paths.events import PathEvents
from services.content.paths.store import PathRepository, RecommendationRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.grouped_writes import Writer
from services.kit.segments import segment_members
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb


class RecommendationsApi:
    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        members: Callable[[], grpc.aio.Channel],
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        # The members service, asked for a segment's members.
        self.members = members

    async def RecommendPath(
        self, request: pb.RecommendPathRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecommendPathResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("path_id", request.path_id)
        problems.uuid("segment_id", request.segment_id)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "recommending a path", writable=True
        )
        async with self.database.read() as session:
            if await PathRepository(session).get(request.community_id, request.path_id) is None:
                raise domain.path_not_found(request.path_id, request.community_id)
        # Asked before the transaction: a slow members service holds no database lock.
        user_ids = sorted(
            set(
                await segment_members(
                    self.members(), caller, request.community_id, request.segment_id
                )
            )
        )

        async def recommend(session: AsyncSession) -> pb.RecommendPathResponse:
            path = await PathRepository(session).get(request.community_id, request.path_id)
            if path is None:
                raise domain.path_not_found(request.path_id, request.community_id)
            recommendation_id = str(uuid.uuid4())
            now = datetime.now(UTC)
            await RecommendationRepository(session).add(
                recommendation_id=recommendation_id,
                community_id=path.community_id,
                path_id=path.id,
                segment_id=request.segment_id,
                by=caller.user_id,
                now=now,
                user_ids=user_ids,
            )
            await PathEvents(session).recommended(
                recommendation_id=recommendation_id,
                path=path,
                segment_id=request.segment_id,
                by=caller.user_id,
                member_count=len(user_ids),
                now=now,
            )
            return pb.RecommendPathResponse(
                recommendation=pb.PathRecommendation(
                    id=recommendation_id,
                    community_id=path.community_id,
                    path_id=path.id,
                    segment_id=request.segment_id,
                    recommended_by_user_id=caller.user_id,
                    member_count=len(user_ids),
                    recommend_time=timestamp(now),
                )
            )

        return await self.writer.write(caller.user_id, request, pb.RecommendPathResponse, recommend)
