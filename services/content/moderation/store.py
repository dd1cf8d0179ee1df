"""Keyword rules in the content database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.moderation.domain import KeywordRule, RuleAction
from services.content.store.tables import keyword_rules
from services.kit.database import utc
from services.kit.paging import Position


class RuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, rule: KeywordRule) -> None:
        await self.session.execute(
            keyword_rules.insert().values(
                id=rule.id,
                community_id=rule.community_id,
                phrase=rule.phrase,
                phrase_key=rule.phrase_key,
                created_by=rule.created_by,
                created_at=rule.created_at,
                action=int(rule.action),
            )
        )

    async def remove(self, rule: KeywordRule) -> None:
        await self.session.execute(delete(keyword_rules).where(keyword_rules.c.id == rule.id))

    async def get(self, community_id: str, rule_id: str) -> KeywordRule | None:
        row = (
            await self.session.execute(
                select(keyword_rules).where(
                    keyword_rules.c.community_id == community_id, keyword_rules.c.id == rule_id
                )
            )
        ).first()
        return _rule(row) if row else None

    async def taken(self, community_id: str, phrase_key: str) -> bool:
        found = await self.session.scalar(
            select(keyword_rules.c.id).where(
                keyword_rules.c.community_id == community_id,
                keyword_rules.c.phrase_key == phrase_key,
            )
        )
        return found is not None

    async def count(self, community_id: str) -> int:
        found = await self.session.scalar(
            select(func.count()).where(keyword_rules.c.community_id == community_id)
        )
        return int(found or 0)

    async def all_of(self, community_id: str) -> list[KeywordRule]:
        rows = await self.session.execute(
            select(keyword_rules).where(keyword_rules.c.community_id == community_id)
        )
        return [_rule(row) for row in rows]

    async def page(
        self, community_id: str, after: Position | None, limit: int
    ) -> list[KeywordRule]:
        query = select(keyword_rules).where(keyword_rules.c.community_id == community_id)
        if after is not None:
            moment, rule_id = after
            query = query.where(
                (keyword_rules.c.created_at > moment)
                | ((keyword_rules.c.created_at == moment) & (keyword_rules.c.id > rule_id))
            )
        rows = await self.session.execute(
            query.order_by(keyword_rules.c.created_at, keyword_rules.c.id).limit(limit)
        )
        return [_rule(row) for row in rows]


def _rule(row: Row[Any]) -> KeywordRule:
    return KeywordRule(
        id=row.id,
        community_id=row.community_id,
        phrase=row.phrase,
        phrase_key=row.phrase_key,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        action=RuleAction(row.action),
    )
