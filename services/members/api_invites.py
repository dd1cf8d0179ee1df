"""gRPC handlers for invites, rules and the member roster of a community."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.errors import NotFound
from services.kit.idempotency import IdempotencyKey
from services.kit.validation import Violations
from services.members import domain, invites, page_tokens
from services.members.convert import (
    ApiBase,
    community_to_proto,
    membership_to_proto,
    save_community,
)
from services.members.standing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    apply,
    community_for,
    require_role,
    timestamp,
)
from services.members.store.events import MemberEvents
from services.members.store.ledger_repository import LedgerRepository
from services.members.store.repository import (
    CommunityRepository,
    InviteRepository,
    add_rules,
    get_rules,
    list_members,
    log_moderation,
)
from studyhall.members.v1 import members_service_pb2 as pb


class InvitesAndRulesApi(ApiBase):
    async def CreateInvite(
        self, request: pb.CreateInviteRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateInviteResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        if not 0 <= request.max_uses <= invites.MAX_USES:
            problems.add("max_uses", f"must be 0 (unlimited) or 1 to {invites.MAX_USES}")
        problems.raise_if_any()
        expires = (
            request.expire_time.ToDatetime(tzinfo=UTC) if request.HasField("expire_time") else None
        )

        async def create(session: AsyncSession) -> pb.CreateInviteResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            if not await _level_unlocks_invites(session, communities, community.id, caller):
                await require_role(
                    communities, community, caller, domain.Role.MODERATOR, "creating invites"
                )
            invite, code = apply(
                lambda: invites.new_invite(community, caller.user_id, expires, request.max_uses)
            )
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
        key = IdempotencyKey(caller.user_id, "CreateInvite", request.request_id)
        response = await self.idempotent.run(key, request, pb.CreateInviteResponse, create)
        if issued:
            response.code = issued[-1]
        return response

    async def ListInvites(
        self, request: pb.ListInvitesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListInvitesResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        _check_page_size(problems, request.page_size)
        # The listing's own clock travels in the token, so an invite expiring between two
        # pages does not move from one group to the other and get skipped or repeated.
        as_of, offset = datetime.now(UTC), 0
        if request.page_token:
            position = page_tokens.decode(request.page_token, ("invites", request.community_id))
            if position is None or not position[1].isdigit():
                problems.add("page_token", "is not a token this query returned; start without it")
            else:
                as_of, offset = position[0], int(position[1])
        problems.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "listing invites"
            )
            rows = await InviteRepository(session).listing(
                community.id, as_of=as_of, offset=offset, limit=size + 1
            )
        page, more = rows[:size], len(rows) > size
        return pb.ListInvitesResponse(
            invites=[invite_to_proto(invite, as_of) for invite in page],
            next_page_token=page_tokens.encode(
                (as_of, str(offset + size)), ("invites", request.community_id)
            )
            if more
            else "",
        )

    async def RevokeInvite(
        self, request: pb.RevokeInviteRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeInviteResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.uuid("invite_id", request.invite_id)
        problems.raise_if_any()

        async def revoke(session: AsyncSession) -> pb.RevokeInviteResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "revoking invites"
            )
            repository = InviteRepository(session)
            current = await repository.get(community.id, request.invite_id)
            revoked = apply(lambda: invites.revoke(current, request.invite_id))
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

        key = IdempotencyKey(caller.user_id, "RevokeInvite", request.request_id)
        return await self.idempotent.run(key, request, pb.RevokeInviteResponse, revoke)

    async def UpdateRules(
        self, request: pb.UpdateRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateRulesResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        if not 1 <= len(request.rules) <= domain.MAX_RULES:
            problems.add("rules", f"give 1 to {domain.MAX_RULES} rules")
        for index, rule in enumerate(request.rules):
            problems.text(f"rules[{index}].title", rule.title, max_length=120)
            problems.text(f"rules[{index}].body", rule.body, required=False, max_length=2000)
        problems.raise_if_any()
        rules = [domain.Rule(rule.title.strip(), rule.body.strip()) for rule in request.rules]

        async def update(session: AsyncSession) -> pb.UpdateRulesResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.ADMIN, "changing the rules"
            )
            changed, version = apply(
                lambda: domain.new_rules(community, rules, caller.user_id, request.etag)
            )
            await save_community(communities, changed)
            await add_rules(session, version)
            await MemberEvents(session).rules_changed(changed, version)
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="update_rules",
                target="",
                reason=f"rules version {version.version}, {len(rules)} rules",
            )
            return pb.UpdateRulesResponse(
                rules=rules_to_proto(version), community=community_to_proto(changed)
            )

        key = IdempotencyKey(caller.user_id, "UpdateRules", request.request_id)
        response = await self.idempotent.run(key, request, pb.UpdateRulesResponse, update)
        self.on_commit()
        return response

    async def GetRules(
        self, request: pb.GetRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRulesResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        if request.version < 0:
            problems.add("version", "must be 0 (current) or a version number")
        problems.raise_if_any()
        async with self.database.read() as session:
            community = await community_for(
                CommunityRepository(session), request.community_id, caller
            )
            version = request.version or community.rules_version
            if version == 0:
                return pb.GetRulesResponse(rules=pb.Rules(community_id=community.id))
            found = await get_rules(session, community.id, version)
        if found is None:
            raise NotFound(
                f"community {community.id} has no rules version {version} "
                f"(current: {community.rules_version})"
            )
        return pb.GetRulesResponse(rules=rules_to_proto(found))

    async def AcceptRules(
        self, request: pb.AcceptRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcceptRulesResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        if request.version <= 0:
            problems.add("version", "name the version of the rules you read")
        problems.raise_if_any()

        async def accept(session: AsyncSession) -> pb.AcceptRulesResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            current = await communities.membership(community.id, caller.user_id)
            if current is None or not current.active:
                await require_role(
                    communities, community, caller, domain.Role.MEMBER, "accepting the rules"
                )
            accepted = apply(lambda: domain.accept_rules(community, current, request.version))
            await communities.save_membership(accepted)
            await MemberEvents(session).rules_accepted(accepted)
            return pb.AcceptRulesResponse(
                membership=membership_to_proto(accepted, community.rules_version)
            )

        key = IdempotencyKey(caller.user_id, "AcceptRules", request.request_id)
        response = await self.idempotent.run(key, request, pb.AcceptRulesResponse, accept)
        self.on_commit()
        return response

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMembersResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        _check_page_size(problems, request.page_size)
        query = ("members", request.community_id, str(request.rules_pending))
        after = None
        if request.page_token:
            after = page_tokens.decode(request.page_token, query)
            if after is None:
                problems.add("page_token", "is not a token this query returned; start without it")
        problems.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "listing members"
            )
            rows = await list_members(
                session,
                community,
                rules_pending=request.rules_pending,
                after=after,
                limit=size + 1,
            )
        page, more = rows[:size], len(rows) > size
        return pb.ListMembersResponse(
            members=[membership_to_proto(row, community.rules_version) for row in page],
            next_page_token=page_tokens.encode((page[-1].joined_at, page[-1].user_id), query)
            if more
            else "",
        )


def _check_page_size(problems: Violations, page_size: int) -> None:
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        problems.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")


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


def rules_to_proto(rules: domain.RulesVersion) -> pb.Rules:
    return pb.Rules(
        community_id=rules.community_id,
        version=rules.version,
        rules=[pb.Rule(title=rule.title, body=rule.body) for rule in rules.rules],
        create_time=timestamp(rules.created_at),
        author_user_id=rules.author_user_id,
    )


async def _level_unlocks_invites(
    session: AsyncSession, communities: CommunityRepository, community_id: str, caller: Identity
) -> bool:
    """Plain members invite once a level the community set grants them `create_invites`."""
    if caller.operator:
        return False
    membership = await communities.membership(community_id, caller.user_id)
    if membership is None or not membership.active:
        return False
    return await LedgerRepository(session).unlocked(community_id, caller.user_id, "create_invites")
