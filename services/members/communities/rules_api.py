"""gRPC handlers for a community's rules: versions, reading them, accepting the current one."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import NotFound
from services.kit.idempotency import IdempotentWriter
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from services.members.communities import domain
from services.members.communities.access import community_for, require_role, require_writable
from services.members.communities.events import CommunityEvents
from services.members.communities.messages import community_to_proto, membership_to_proto
from services.members.communities.store import (
    CommunityRepository,
    add_rules,
    get_rules,
    log_moderation,
)
from studyhall.members.v1 import members_service_pb2 as pb


class RulesApi:
    def __init__(self, database: Database, writer: IdempotentWriter) -> None:
        self.database = database
        self.writer = writer

    async def UpdateRules(
        self, request: pb.UpdateRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateRulesResponse:
        caller = current_identity()
        problems = Violations()
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
            require_writable(community, "changing the rules")
            changed, version = domain.new_rules(community, rules, caller.user_id, request.etag)
            await communities.save(changed)
            await add_rules(session, version)
            await CommunityEvents(session).rules_changed(changed, version)
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

        return await self.writer.write(caller.user_id, request, pb.UpdateRulesResponse, update)

    async def GetRules(
        self, request: pb.GetRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRulesResponse:
        caller = current_identity()
        problems = Violations()
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
            require_writable(community, "accepting the rules")
            accepted = domain.accept_rules(community, current, request.version)
            await communities.save_membership(accepted)
            await CommunityEvents(session).rules_accepted(accepted)
            return pb.AcceptRulesResponse(
                membership=membership_to_proto(accepted, community.rules_version)
            )

        return await self.writer.write(caller.user_id, request, pb.AcceptRulesResponse, accept)


def rules_to_proto(rules: domain.RulesVersion) -> pb.Rules:
    return pb.Rules(
        community_id=rules.community_id,
        version=rules.version,
        rules=[pb.Rule(title=rule.title, body=rule.body) for rule in rules.rules],
        create_time=timestamp(rules.created_at),
        author_user_id=rules.author_user_id,
    )
