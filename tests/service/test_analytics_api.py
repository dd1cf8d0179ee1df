"""A community's figures: zero until events arrive, and never another community's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from services.analytics.app import SPEC
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.tables import community_stats, member_states
from services.kit.access import Role
from studyhall.analytics.v1 import analytics_service_pb2 as pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.errors import field_violations
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service


@pytest.fixture
async def analytics(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        SPEC,
        AnalyticsSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as running:
        yield running


@pytest.fixture
def stub(analytics: RunningService) -> pb_grpc.AnalyticsServiceStub:
    return pb_grpc.AnalyticsServiceStub(analytics.channel)


def community() -> str:
    return str(uuid.uuid4())


async def community_moderated_by(running: RunningService, moderator: str) -> str:
    """A new public community in which `moderator` may read the figures."""
    community_id = community()
    await grant(running, community_id, moderator, Role.MODERATOR)
    return community_id


async def record_figures(
    running: RunningService, community_id: str, member_count: int = 0, **figures: object
) -> None:
    """What the event consumers write: figures as projected so far, members one by one."""
    async with running.deps.database.write() as session:
        await session.execute(community_stats.insert().values(community_id=community_id, **figures))
        if member_count:
            await session.execute(
                member_states.insert(),
                [
                    {"community_id": community_id, "user_id": f"u{n}", "active": True, "version": 1}
                    for n in range(member_count)
                ],
            )


async def test_stats_of_quiet_community_are_zero(
    analytics: RunningService, stub: pb_grpc.AnalyticsServiceStub
) -> None:
    community_id = await community_moderated_by(analytics, "ada")
    reply = await stub.GetCommunityStats(
        pb.GetCommunityStatsRequest(community_id=community_id), metadata=analytics.auth("ada")
    )
    assert reply.stats == pb.CommunityStats(community_id=community_id)
    assert not reply.stats.HasField("update_time")


async def test_stats_show_the_figures_counted_so_far(
    analytics: RunningService, stub: pb_grpc.AnalyticsServiceStub
) -> None:
    community_id = await community_moderated_by(analytics, "ada")
    counted_at = datetime(2031, 3, 14, 18, 30, 0, 250000, tzinfo=UTC)
    await record_figures(
        analytics,
        community_id,
        member_count=120,
        post_count=2**40,
        activity_count=7,
        product_count=3,
        updated_at=counted_at,
    )

    reply = await stub.GetCommunityStats(
        pb.GetCommunityStatsRequest(community_id=community_id), metadata=analytics.auth("ada")
    )
    stats = reply.stats
    assert stats.community_id == community_id
    assert (stats.member_count, stats.post_count, stats.activity_count, stats.product_count) == (
        120,
        2**40,
        7,
        3,
    )
    assert stats.update_time.ToDatetime(tzinfo=UTC) == counted_at


async def test_figures_of_another_community_are_not_mixed_in(
    analytics: RunningService, stub: pb_grpc.AnalyticsServiceStub
) -> None:
    busy, quiet = community(), await community_moderated_by(analytics, "ada")
    await record_figures(analytics, busy, member_count=50, updated_at=datetime.now(UTC))

    reply = await stub.GetCommunityStats(
        pb.GetCommunityStatsRequest(community_id=quiet), metadata=analytics.auth("ada")
    )
    assert reply.stats == pb.CommunityStats(community_id=quiet)


async def test_community_id_in_another_spelling_is_refused_not_missed(
    analytics: RunningService, stub: pb_grpc.AnalyticsServiceStub
) -> None:
    community_id = await community_moderated_by(analytics, "ada")
    await record_figures(analytics, community_id, post_count=4)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCommunityStats(
            pb.GetCommunityStatsRequest(community_id=community_id.upper()),
            metadata=analytics.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lowercase" in field_violations(caught.value)["community_id"]


@pytest.mark.parametrize(("community_id", "problem"), [("", "is required"), ("c1", "UUID")])
async def test_community_id_must_be_a_uuid(
    analytics: RunningService, stub: pb_grpc.AnalyticsServiceStub, community_id: str, problem: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCommunityStats(
            pb.GetCommunityStatsRequest(community_id=community_id),
            metadata=analytics.auth("ada"),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert set(violations) == {"community_id"}
    assert problem in violations["community_id"]


async def test_call_without_token_is_unauthenticated(
    analytics: RunningService, stub: pb_grpc.AnalyticsServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetCommunityStats(pb.GetCommunityStatsRequest(community_id=community()))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
