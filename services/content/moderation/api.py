"""gRPC handlers for a community's keyword rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.moderation import domain
from services.content.moderation.events import rule_added, rule_removed
from services.content.moderation.store import RuleRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import AlreadyExists, FailedPrecondition, NotFound
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb


class RulesApi:
    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        changed: Callable[[str], None] = lambda _community_id: None,
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        # Told when a community's rules change here (the screen reads them again).
        self.changed = changed

    async def AddKeywordRule(
        self, request: pb.AddKeywordRuleRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddKeywordRuleResponse:
        caller = current_identity()
        problems = Violations()
        problem = domain.phrase_problem(request.phrase)
        if problem is not None:
            problems.add("phrase", problem)
        problems.enum("action", request.action, domain.RuleAction, "KeywordRuleAction")
        problems.raise_if_any()
        action = domain.RuleAction(request.action or domain.RuleAction.BLOCK)
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "adding a keyword rule", writable=True
        )

        async def add(session: AsyncSession) -> pb.AddKeywordRuleResponse:
            rule = domain.new_rule(
                request.community_id, request.phrase, caller.user_id, datetime.now(UTC), action
            )
            rules = RuleRepository(session)
            if await rules.taken(rule.community_id, rule.phrase_key):
                raise AlreadyExists(
                    f"community {rule.community_id} already watches {rule.phrase!r}"
                )
            if await rules.count(rule.community_id) >= domain.RULES_MAX:
                raise FailedPrecondition(
                    f"community {rule.community_id} has {domain.RULES_MAX} keyword rules, "
                    "the most it may have; remove one first"
                )
            await rules.add(rule)
            await rule_added(session, rule)
            return pb.AddKeywordRuleResponse(rule=rule_to_proto(rule))

        added = await self.writer.write(caller.user_id, request, pb.AddKeywordRuleResponse, add)
        self.changed(request.community_id)
        return added

    async def ListKeywordRules(
        self, request: pb.ListKeywordRulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListKeywordRulesResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["keyword-rules", request.community_id])
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "reading the keyword rules"
        )
        async with self.database.read() as session:
            found = await RuleRepository(session).page(
                request.community_id, page.after, page.size + 1
            )
        rules, token = page_of(found, page, lambda rule: (rule.created_at, rule.id))
        return pb.ListKeywordRulesResponse(
            rules=[rule_to_proto(rule) for rule in rules], next_page_token=token
        )

    async def RemoveKeywordRule(
        self, request: pb.RemoveKeywordRuleRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveKeywordRuleResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("rule_id", request.rule_id)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "removing a keyword rule", writable=True
        )

        async def remove(session: AsyncSession) -> pb.RemoveKeywordRuleResponse:
            rules = RuleRepository(session)
            rule = await rules.get(request.community_id, request.rule_id)
            if rule is None:
                raise NotFound(
                    f"keyword rule {request.rule_id} not found in community {request.community_id}"
                )
            await rules.remove(rule)
            await rule_removed(session, rule, caller.user_id, datetime.now(UTC))
            return pb.RemoveKeywordRuleResponse(rule=rule_to_proto(rule))

        removed = await self.writer.write(
            caller.user_id, request, pb.RemoveKeywordRuleResponse, remove
        )
        self.changed(request.community_id)
        return removed


def rule_to_proto(rule: domain.KeywordRule) -> pb.KeywordRule:
    return pb.KeywordRule(
        rule_id=rule.id,
        community_id=rule.community_id,
        phrase=rule.phrase,
        created_by_user_id=rule.created_by,
        create_time=timestamp(rule.created_at),
        action=pb.KeywordRuleAction.ValueType(rule.action),
    )
