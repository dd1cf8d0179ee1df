"""gRPC edge of the analytics service: decode, validate, authorize, call, encode."""

from __future__ import annotations

import grpc

from services.analytics import domain
from services.analytics.store.repository import StatsRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.timestamps import timestamp_or_none
from studyhall.analytics.v1 import analytics_service_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AnalyticsService"].full_name


class AnalyticsApi:
    def __init__(self, database: Database, access: Access) -> None:
        self.database = database
        self.access = access

    async def GetCommunityStats(
        self, request: pb.GetCommunityStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCommunityStatsResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "reading a community's figures"
        )
        community_id = request.community_id
        async with self.database.read() as session:
            stats = await StatsRepository(session).get(community_id)
        return pb.GetCommunityStatsResponse(
            stats=_to_proto(stats or domain.CommunityStats(community_id=community_id))
        )


def _to_proto(stats: domain.CommunityStats) -> pb.CommunityStats:
    return pb.CommunityStats(
        community_id=stats.community_id,
        member_count=stats.member_count,
        post_count=stats.post_count,
        activity_count=stats.activity_count,
        product_count=stats.product_count,
        update_time=timestamp_or_none(stats.updated_at),
    )
