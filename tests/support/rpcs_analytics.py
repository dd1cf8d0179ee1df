"""The request catalogue of the analytics process: AnalyticsService (see
tests/support/catalogue.py)."""

from __future__ import annotations

import uuid

from services.analytics.app import SPEC
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.tables import metadata
from services.kit.access import Role
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from tests.support.access import grant
from tests.support.catalogue import Process, Rpc, World, data_rights_entries
from tests.support.services import RunningService

ANALYTICS = pb.DESCRIPTOR.services_by_name["AnalyticsService"]
OWNER = "olga"

CATALOGUE: list[Rpc] = [
    Rpc(
        ANALYTICS,
        "GetCommunityStats",
        lambda w: pb.GetCommunityStatsRequest(community_id=w.community_id),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ANALYTICS,
        "GetMetrics",
        lambda w: pb.GetMetricsRequest(
            community_id=w.community_id, start_date="2030-01-01", end_date="2030-03-31"
        ),
        Role.MODERATOR,
        False,
    ),
    Rpc(
        ANALYTICS,
        "GetRevenue",
        lambda w: pb.GetRevenueRequest(
            community_id=w.community_id, start_date="2030-01-01", end_date="2030-03-31"
        ),
        Role.ADMIN,
        False,
    ),
    *data_rights_entries(ANALYTICS),
]


async def prepare(running: RunningService, needs: frozenset[str] | None = None) -> World:
    """A community the owner owns (analytics has no call that writes: its figures come
    from events, which tests/service/test_analytics_metrics.py publishes on the bus)."""
    community_id = str(uuid.uuid4())
    await grant(running, community_id, OWNER, Role.OWNER)
    return World(community_id=community_id, owner=OWNER)


PROCESS = Process(
    name="analytics",
    spec=SPEC,
    settings=AnalyticsSettings,
    metadata=metadata,
    catalogue=CATALOGUE,
    prepare=prepare,
)
