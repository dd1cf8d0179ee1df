"""The first flow across the backbone: members publishes, analytics counts, exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select

from services.analytics.app import SPEC as ANALYTICS
from services.analytics.settings import AnalyticsSettings
from services.analytics.store.tables import inbox
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from services.members.store.tables import outbox
from studyhall.analytics.v1 import analytics_service_pb2 as analytics_pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as analytics_grpc
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service


@dataclass
class Backbone:
    members: RunningService
    analytics: RunningService

    @property
    def members_stub(self) -> members_grpc.MembersServiceStub:
        return members_grpc.MembersServiceStub(self.members.channel)

    async def member_count(self, community_id: str, user: str = "ops") -> int:
        stub = analytics_grpc.AnalyticsServiceStub(self.analytics.channel)
        reply = await stub.GetCommunityStats(
            analytics_pb.GetCommunityStatsRequest(community_id=community_id),
            metadata=self.analytics.auth(user, operator=True),
        )
        return int(reply.stats.member_count)

    async def eventually_counts(self, community_id: str, expected: int) -> None:
        for _ in range(300):
            try:
                if await self.member_count(community_id) == expected:
                    return
            except grpc.aio.AioRpcError as error:
                # Analytics learns of the community from the same stream, a moment later.
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"member count stayed {await self.member_count(community_id)}, expected {expected}"
        )


@pytest.fixture
async def backbone(
    database_url: str,
    second_database_url: str,
    redis_url: str,
    nats_url: str,
    data_dir: Path,
) -> AsyncIterator[Backbone]:
    # The two services get separate databases: each owns its data.
    members_url, analytics_url = database_url, second_database_url
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "data_dir": data_dir}
    async with (
        running_service(MEMBERS, MembersSettings, database_url=members_url, **common) as members,
        running_service(
            ANALYTICS, AnalyticsSettings, database_url=analytics_url, **common
        ) as analytics,
    ):
        yield Backbone(members, analytics)


async def _create(backbone: Backbone, owner: str) -> str:
    reply = await backbone.members_stub.CreateCommunity(
        members_pb.CreateCommunityRequest(name=f"Club {uuid.uuid4().hex[:8]}", topic="english"),
        metadata=backbone.members.auth(owner),
    )
    return str(reply.community.id)


async def test_joins_and_leaves_reach_the_member_count(backbone: Backbone) -> None:
    community_id = await _create(backbone, "owner")
    await backbone.eventually_counts(community_id, 1)
    for user in ("amy", "ben", "cai"):
        await backbone.members_stub.JoinCommunity(
            members_pb.JoinCommunityRequest(community_id=community_id),
            metadata=backbone.members.auth(user),
        )
    await backbone.eventually_counts(community_id, 4)
    await backbone.members_stub.LeaveCommunity(
        members_pb.LeaveCommunityRequest(community_id=community_id),
        metadata=backbone.members.auth("ben"),
    )
    await backbone.eventually_counts(community_id, 3)
    # Rejoining is a new version of the same membership.
    rejoined = await backbone.members_stub.JoinCommunity(
        members_pb.JoinCommunityRequest(community_id=community_id),
        metadata=backbone.members.auth("ben"),
    )
    assert rejoined.membership.version == 3
    await backbone.eventually_counts(community_id, 4)


async def test_every_committed_event_is_published_and_applied_once(backbone: Backbone) -> None:
    community_id = await _create(backbone, "owner")
    await asyncio.gather(
        *(
            backbone.members_stub.JoinCommunity(
                members_pb.JoinCommunityRequest(community_id=community_id),
                metadata=backbone.members.auth(f"user-{n}"),
            )
            for n in range(30)
        )
    )
    await backbone.eventually_counts(community_id, 31)
    async with backbone.members.deps.database.read() as session:
        produced = set(
            (
                await session.scalars(
                    select(outbox.c.event_id).where(outbox.c.community_id == community_id)
                )
            ).all()
        )
        unpublished = await session.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
    async with backbone.analytics.deps.database.read() as session:
        applied = list(
            (
                await session.scalars(
                    select(inbox.c.event_id).where(inbox.c.consumer == "analytics-members")
                )
            ).all()
        )
    assert len(produced) == 32  # created, the owner joined, 30 joins
    assert produced <= set(applied)
    assert len(applied) == len(set(applied))
    assert unpublished == 0


async def test_membership_rules_are_enforced(backbone: Backbone) -> None:
    community_id = await _create(backbone, "owner")
    stub = backbone.members_stub
    cases = [
        (
            stub.LeaveCommunity,
            members_pb.LeaveCommunityRequest,
            "owner",
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (
            stub.LeaveCommunity,
            members_pb.LeaveCommunityRequest,
            "stranger",
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            stub.JoinCommunity,
            members_pb.JoinCommunityRequest,
            "owner",
            grpc.StatusCode.ALREADY_EXISTS,
        ),
    ]
    for call, request_type, user, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(
                request_type(community_id=community_id), metadata=backbone.members.auth(user)
            )
        assert caught.value.code() == code, (request_type, user)
    invite_only = await stub.CreateCommunity(
        members_pb.CreateCommunityRequest(
            name=f"Exam {uuid.uuid4().hex[:8]}",
            topic="exams",
            join_policy=members_pb.JOIN_POLICY_INVITE_ONLY,
        ),
        metadata=backbone.members.auth("owner"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.JoinCommunity(
            members_pb.JoinCommunityRequest(community_id=invite_only.community.id),
            metadata=backbone.members.auth("amy"),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "invite_only" in (caught.value.details() or "")
    await backbone.eventually_counts(community_id, 1)
