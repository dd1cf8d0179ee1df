"""The gRPC handler of peer benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc

from services.analytics.benchmarks import domain
from services.analytics.benchmarks.store import BenchmarkRepository
from services.analytics.domain import one_day
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from studyhall.analytics.v1 import analytics_service_pb2 as pb


class BenchmarksApi:
    def __init__(self, database: Database, access: Access) -> None:
        self.database = database
        self.access = access

    async def GetBenchmarks(
        self, request: pb.GetBenchmarksRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBenchmarksResponse:
        last = one_day(request.date, "date", datetime.now(UTC).date() - timedelta(days=1))
        await self.access.require_role(
            request.community_id, current_identity(), Role.ADMIN, "reading benchmarks"
        )
        first = last - timedelta(days=domain.DAYS - 1)
        community_id = request.community_id
        async with self.database.read() as session:
            store = BenchmarkRepository(session)
            topic = await store.topic(community_id)
            others = (
                [c for c in await store.communities_of(topic) if c != community_id] if topic else []
            )
            figures = await store.figures([community_id, *others], first, last)
        peers = {c: figures[c] for c in others}
        reply = pb.GetBenchmarksResponse(community_id=community_id, topic=topic, peers=len(peers))
        for metric, value, rank in domain.benchmarks(figures[community_id], peers):
            reply.benchmarks.add(metric=metric, value=value, percentile=rank)
        return reply
