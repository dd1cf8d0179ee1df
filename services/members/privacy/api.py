"""gRPC handlers for a member's data rights: export and erasure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.data_rights_api import data_subject
from services.kit.database import Database
from services.kit.errors import FailedPrecondition, NotFound
from services.kit.idempotency import IdempotentWriter
from services.kit.validation import Violations
from services.members.communities import domain
from services.members.communities.events import CommunityEvents
from services.members.communities.messages import membership_to_proto
from services.members.communities.store import (
    CommunityRepository,
    JoinRequestRepository,
    log_moderation,
)
from services.members.privacy import usecases as data_rights
from services.members.privacy.events import PrivacyEvents
from studyhall.members.v1 import members_service_pb2 as pb

# What must follow an erasure once it committed, outside the database (a community id).
AfterErase = Callable[[str], Awaitable[None]]


class PrivacyApi:
    def __init__(
        self, database: Database, writer: IdempotentWriter, after_erase: AfterErase
    ) -> None:
        self.database = database
        self.writer = writer
        # Caches built from erased rows (the leaderboards) are dropped and rebuilt.
        self.after_erase = after_erase

    async def ExportMyData(
        self, request: pb.ExportMyDataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExportMyDataResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("user_id", request.user_id, required=False)
        problems.raise_if_any()
        subject = data_subject(caller, request.user_id)
        async with self.database.read() as session:
            await _community_holding(session, request.community_id, subject, caller)
            document = await data_rights.export_document(session, request.community_id, subject)
        return pb.ExportMyDataResponse(document=document, content_type=data_rights.CONTENT_TYPE)

    async def EraseMyData(
        self, request: pb.EraseMyDataRequest, context: grpc.aio.ServicerContext
    ) -> pb.EraseMyDataResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("user_id", request.user_id, required=False)
        if not request.confirm:
            problems.add("confirm", "must be true: erasure cannot be undone")
        problems.raise_if_any()
        subject = data_subject(caller, request.user_id)

        async def erase(session: AsyncSession) -> pb.EraseMyDataResponse:
            community = await _community_holding(session, request.community_id, subject, caller)
            communities = CommunityRepository(session)
            current = await communities.membership(community.id, subject)
            now = datetime.now(UTC)
            published = CommunityEvents(session)
            kept: domain.Membership | None = None
            if current is not None:
                if current.role is domain.Role.OWNER:
                    raise FailedPrecondition(
                        "the owner's data cannot be erased while they own the community; "
                        "transfer ownership first"
                    )
                kept = _what_erasure_keeps(current, now)
                await communities.save_membership(kept)
                if current.active:
                    await published.member_left(kept)
            await data_rights.erase_all(session, community.id, subject)
            await PrivacyEvents(session).member_erased(
                kept or domain.Membership(community.id, subject, domain.Role.MEMBER, now, False, 0),
                now,
            )
            # Kept with the user id: the community's accountable record of who did what.
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="erase_member_data",
                target=subject,
            )
            return pb.EraseMyDataResponse(
                membership=membership_to_proto(kept, community.rules_version) if kept else None
            )

        response = await self.writer.write(caller.user_id, request, pb.EraseMyDataResponse, erase)
        await self.after_erase(request.community_id)
        return response


def _what_erasure_keeps(current: domain.Membership, now: datetime) -> domain.Membership:
    """The user id, a running ban or mute, and a grown version so late events lose."""
    return replace(
        current,
        role=domain.Role.MEMBER,
        active=False,
        left_at=current.left_at if not current.active else now,
        accepted_rules_version=0,
        muted_until=current.muted_until if current.muted(now) else None,
        banned_until=current.banned_until if current.banned(now) else None,
        version=current.version + 1,
    )


async def _community_holding(
    session: AsyncSession, community_id: str, user_id: str, caller: Identity
) -> domain.Community:
    """The community, if it holds a record of `user_id`; the same NOT_FOUND otherwise, so
    a private community's existence is not learned this way."""
    communities = CommunityRepository(session)
    community = await communities.get(community_id)
    holds = community is not None and (
        await communities.membership(community_id, user_id) is not None
        or await JoinRequestRepository(session).get(community_id, user_id) is not None
    )
    if community is None or not holds:
        raise NotFound(f"community {community_id} holds no data about {user_id}")
    return community
