"""The gRPC handlers of engagement scores and churn risk."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from services.analytics.domain import one_day
from services.analytics.engagement import domain
from services.analytics.engagement.store import EngagementRepository, since
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.timestamps import timestamp
from studyhall.analytics.v1 import analytics_service_pb2 as pb

DEFAULT_TOP = 20


class EngagementApi:
    def __init__(self, database: Database, access: Access) -> None:
        self.database = database
        self.access = access

    async def ListEngagementScores(
        self, request: pb.ListEngagementScoresRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEngagementScoresResponse:
        on = one_day(request.date, "date", datetime.now(UTC).date())
        await self.access.require_role(
            request.community_id, current_identity(), Role.MODERATOR, "reading engagement"
        )
        async with self.database.read() as session:
            store = EngagementRepository(session)
            members = await store.members(request.community_id)
            days = await store.active_days(request.community_id, domain.first_day_read(on), on)
        judged = domain.engagement(members, days, on)[: request.top or DEFAULT_TOP]
        return pb.ListEngagementScoresResponse(
            community_id=request.community_id,
            scores=[
                pb.EngagementScore(
                    user_id=e.user_id,
                    score=e.score,
                    previous_score=e.previous_score,
                    last_active_date=e.last_active.isoformat() if e.last_active else "",
                )
                for e in judged
            ],
        )

    async def ListChurnRisks(
        self, request: pb.ListChurnRisksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListChurnRisksResponse:
        await self.access.require_role(
            request.community_id, current_identity(), Role.MODERATOR, "reading churn risks"
        )
        async with self.database.read() as session:
            store = EngagementRepository(session)
            rows = await store.at_risk(request.community_id, request.top or DEFAULT_TOP)
            swept = await store.swept_on(request.community_id)
        return pb.ListChurnRisksResponse(
            community_id=request.community_id,
            swept_date=swept.isoformat() if swept else "",
            members=[
                pb.ChurnRiskMember(
                    user_id=row.user_id,
                    risk=row.risk,
                    score=row.score,
                    previous_score=row.previous_score,
                    last_active_date=row.last_active_on.isoformat() if row.last_active_on else "",
                    since_time=timestamp(since(row)),
                )
                for row in rows
            ],
        )
