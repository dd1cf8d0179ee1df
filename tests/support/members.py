"""Acting in a members community through the real gRPC API, for the members service tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import and_, exists, func, select

from services.kit.events.envelope import Envelope, new_event_id
from services.members.moderation import consumers as moderation_consumers
from services.members.store.tables import member_activity, memberships
from studyhall.content.v1 import content_events_pb2 as content_events
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from tests.support.services import RunningService


async def joins_marked_as_activity(members: RunningService, community_id: str) -> None:
    """Wait until the points consumer has marked every active member's join as activity.

    It does so asynchronously, moving last activity forward to the join whenever it lands:
    a test that sets activity itself waits for it first, or may see its value overwritten.
    """
    unmarked = (
        select(func.count())
        .select_from(memberships)
        .where(
            memberships.c.community_id == community_id,
            memberships.c.active.is_(True),
            ~exists().where(
                and_(
                    member_activity.c.community_id == memberships.c.community_id,
                    member_activity.c.user_id == memberships.c.user_id,
                )
            ),
        )
    )
    for _ in range(400):
        async with members.deps.database.read() as session:
            if not await session.scalar(unmarked):
                return
        await asyncio.sleep(0.025)
    raise AssertionError("the points ledger never marked the joins as activity")


async def post_known(members: RunningService, community_id: str, author: str) -> pb.ContentRef:
    """A post of `author` in the community, as members knows it once content's PostCreated
    reached it: handed to moderation's consumer in one transaction, as the backbone would
    (tests/service/test_members_reports_about_posts.py goes through the bus)."""
    post_id = str(uuid.uuid4())
    event = content_events.PostCreated(
        community_id=community_id, post_id=post_id, author_user_id=author, version=1
    )
    envelope = Envelope(
        id=new_event_id(),
        source="/studyhall/test",
        type=event.DESCRIPTOR.full_name,
        time=datetime.now(UTC),
        subject=f"communities/{community_id}/posts/{post_id}",
        community_id=community_id,
        data=event.SerializeToString(),
    )
    async with members.deps.database.write() as session:
        await moderation_consumers.apply(session, [(event, envelope)])
    return pb.ContentRef(service="content", kind="post", id=post_id)


class Hall:
    """One community, and calls into it as someone."""

    def __init__(self, members: RunningService, community: pb.Community) -> None:
        self.members = members
        self.stub = pb_grpc.MembersServiceStub(members.channel)
        self.community = community
        self.id = community.id

    @classmethod
    async def create(cls, members: RunningService, owner: str = "olga", **fields: Any) -> Hall:
        stub = pb_grpc.MembersServiceStub(members.channel)
        reply = await stub.CreateCommunity(
            pb.CreateCommunityRequest(name=f"Hall {uuid.uuid4().hex[:8]}", topic="exams", **fields),
            metadata=members.auth(owner),
        )
        return cls(members, reply.community)

    def auth(self, user: str) -> list[tuple[str, str]]:
        return self.members.auth(user)

    async def join(self, user: str, **fields: Any) -> pb.JoinCommunityResponse:
        reply: pb.JoinCommunityResponse = await self.stub.JoinCommunity(
            pb.JoinCommunityRequest(community_id=self.id, **fields), metadata=self.auth(user)
        )
        return reply

    async def promote(self, user: str, role: pb.Role.ValueType, by: str = "olga") -> None:
        await self.stub.ChangeRole(
            pb.ChangeRoleRequest(community_id=self.id, user_id=user, role=role),
            metadata=self.auth(by),
        )

    async def moderate(
        self, actor: str, user: str, action: pb.ModerationAction.ValueType, reason: str = "rule 1"
    ) -> None:
        await self.stub.ModerateMember(
            pb.ModerateMemberRequest(
                community_id=self.id, user_id=user, action=action, reason=reason
            ),
            metadata=self.auth(actor),
        )

    async def audit(self) -> list[tuple[str, str, str]]:
        reply = await self.stub.ListAuditLog(
            pb.ListAuditLogRequest(community_id=self.id, page_size=100), metadata=self.auth("olga")
        )
        return [(e.action, e.actor_user_id, e.target_user_id) for e in reply.entries]


async def refused(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value
