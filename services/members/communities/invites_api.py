"""gRPC handlers for invites: codes that let people in, and their listing and revocation."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.idempotency import IdempotentWriter
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from services.members.communities import domain, invites
from services.members.communities.access import (
    HoldsPrivilege,
    community_for,
    require_role,
    require_writable,
)
from services.members.communities.store import (
    CommunityRepository,
    InviteRepository,
    log_moderation,
)
from studyhall.members.v1 import members_service_pb2 as pb


class InvitesApi:
    def __init__(
        self, database: Database, writer: IdempotentWriter, holds_privilege: HoldsPrivilege
    ) -> None:
        self.database = database
        self.writer = writer
        # Plain members invite once their level grants `create_invites` (recognition knows).
        self.holds_privilege = holds_privilege

    async def CreateInvite(
        self, request: pb.CreateInviteRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateInviteResponse:
        caller = current_identity()
        problems = Violations()
        if not 0 <= request.max_uses <= invites.MAX_USES:
            problems.add("max_uses", f"must be 0 (unlimited) or 1 to {invites.MAX_USES}")
        problems.raise_if_any()
        expires = (
            request.expire_time.ToDatetime(tzinfo=UTC) if request.HasField("expire_time") else None
        )

        async def create(session: AsyncSession) -> pb.CreateInviteResponse:
            # Only the code of the attempt that commits is the caller's (a transaction may
            # run again after losing a race).
            issued.clear()
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            if not await self._level_unlocks_invites(session, communities, community.id, caller):
                await require_role(
                    communities, community, caller, domain.Role.MODERATOR, "creating invites"
                )
            require_writable(community, "creating invites")
            invite, code = invites.new_invite(community, caller.user_id, expires, request.max_uses)
            await InviteRepository(session).add(invite, invites.code_hash(code))
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="create_invite",
                target="",
                reason=f"invite {invite.id} ({invite.code_prefix}…), "
                f"max uses {invite.max_uses or 'unlimited'}",
                until=invite.expires_at,
            )
            issued.append(code)
            return pb.CreateInviteResponse(invite=invite_to_proto(invite))

        # The code stays out of the stored response: idempotency keys must not keep the
        # secret the invites table keeps only a hash of. A replay returns the invite alone.
        issued: list[str] = []
        response = await self.writer.write(caller.user_id, request, pb.CreateInviteResponse, create)
        if issued:
            response.code = issued[-1]
        return response

    async def ListInvites(
        self, request: pb.ListInvitesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListInvitesResponse:
        caller = current_identity()
        problems = Violations()
        paging = read_page(problems, request, ("invites", request.community_id), numeric=True)
        problems.raise_if_any()
        # The listing's own clock travels in the token, so an invite expiring between two
        # pages does not move from one group to the other and get skipped or repeated.
        as_of, offset = paging.after or (datetime.now(UTC), "0")
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "listing invites"
            )
            rows = await InviteRepository(session).listing(
                community.id, as_of=as_of, offset=int(offset), limit=paging.size + 1
            )
        page, token = page_of(rows, paging, lambda _: (as_of, str(int(offset) + paging.size)))
        return pb.ListInvitesResponse(
            invites=[invite_to_proto(invite, as_of) for invite in page], next_page_token=token
        )

    async def RevokeInvite(
        self, request: pb.RevokeInviteRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeInviteResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("invite_id", request.invite_id)
        problems.raise_if_any()

        async def revoke(session: AsyncSession) -> pb.RevokeInviteResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "revoking invites"
            )
            require_writable(community, "revoking invites")
            repository = InviteRepository(session)
            current = await repository.get(community.id, request.invite_id)
            revoked = invites.revoke(current, request.invite_id)
            await repository.revoke(revoked)
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="revoke_invite",
                target="",
                reason=f"invite {revoked.id} ({revoked.code_prefix}…)",
            )
            return pb.RevokeInviteResponse(invite=invite_to_proto(revoked))

        return await self.writer.write(caller.user_id, request, pb.RevokeInviteResponse, revoke)

    async def _level_unlocks_invites(
        self,
        session: AsyncSession,
        communities: CommunityRepository,
        community_id: str,
        caller: Identity,
    ) -> bool:
        """Plain members invite once a level the community set grants them `create_invites`."""
        if caller.operator:
            return False
        membership = await communities.membership(community_id, caller.user_id)
        if membership is None or not membership.active:
            return False
        return await self.holds_privilege(session, community_id, caller.user_id, "create_invites")


def invite_to_proto(invite: invites.Invite, as_of: datetime | None = None) -> pb.Invite:
    return pb.Invite(
        invite_id=invite.id,
        community_id=invite.community_id,
        code_prefix=invite.code_prefix,
        creator_user_id=invite.creator_user_id,
        create_time=timestamp(invite.created_at),
        expire_time=timestamp(invite.expires_at),
        max_uses=invite.max_uses,
        uses=invite.uses,
        revoke_time=timestamp(invite.revoked_at) if invite.revoked_at else None,
        usable=invite.usable(as_of or datetime.now(UTC)),
    )
