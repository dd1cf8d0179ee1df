"""gRPC handler for inviting a members' segment to an activity: a snapshot of its members,
taken with the organizer's own token (docs/decisions/0015, 0046)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import check_scheduled
from services.events.activities.lookup import require_organizer, visible_activity
from services.events.invitations.events import activity_invited
from services.events.invitations.store import InvitationRepository
from services.kit.access import Access
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition
from services.kit.grouped_writes import Writer
from services.kit.segments import segment_members
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.events.v1 import activities_service_pb2 as pb


class InvitationsApi:
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

    async def InviteSegment(
        self, request: pb.InviteSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.InviteSegmentResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.uuid("segment_id", request.segment_id)
        problems.raise_if_any()
        standing = await self.access.require_writable(
            request.community_id, caller, "inviting a segment"
        )
        now = datetime.now(UTC)
        async with self.database.read() as session:
            activity = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
            require_organizer(activity, standing, caller, "inviting a segment")
            _check_invitable(activity.id, activity.ends_at, now)
            check_scheduled(activity, "invited to")
        # Asked before the transaction: a slow members service holds no database lock.
        user_ids = sorted(
            set(
                await segment_members(
                    self.members(), caller, request.community_id, request.segment_id
                )
            )
        )

        async def invite(session: AsyncSession) -> pb.InviteSegmentResponse:
            found = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
            check_scheduled(found, "invited to")
            invitation_id = str(uuid.uuid4())
            await InvitationRepository(session).add(
                invitation_id=invitation_id,
                activity_id=found.id,
                community_id=found.community_id,
                segment_id=request.segment_id,
                by=caller.user_id,
                now=now,
                user_ids=user_ids,
            )
            await activity_invited(
                session,
                invitation_id=invitation_id,
                activity_id=found.id,
                community_id=found.community_id,
                segment_id=request.segment_id,
                by=caller.user_id,
                member_count=len(user_ids),
                now=now,
            )
            return pb.InviteSegmentResponse(
                invitation=pb.ActivityInvitation(
                    id=invitation_id,
                    activity_id=found.id,
                    community_id=found.community_id,
                    segment_id=request.segment_id,
                    invited_by_user_id=caller.user_id,
                    member_count=len(user_ids),
                    invite_time=timestamp(now),
                )
            )

        return await self.writer.write(caller.user_id, request, pb.InviteSegmentResponse, invite)


def _check_invitable(activity_id: str, ends_at: datetime, now: datetime) -> None:
    if ends_at <= now:
        raise FailedPrecondition(f"activity {activity_id} has ended; nobody can be invited")
