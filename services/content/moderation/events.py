"""The facts about keyword rules, staged in content's outbox in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.moderation.domain import KeywordRule
from services.content.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events


async def rule_added(session: AsyncSession, rule: KeywordRule) -> None:
    await OUTBOX.add(
        session,
        events.KeywordRuleAdded(
            community_id=rule.community_id,
            rule_id=rule.id,
            added_by_user_id=rule.created_by,
            add_time=timestamp(rule.created_at),
        ),
        community_id=rule.community_id,
        subject=_subject(rule),
    )


async def rule_removed(session: AsyncSession, rule: KeywordRule, by: str, now: datetime) -> None:
    await OUTBOX.add(
        session,
        events.KeywordRuleRemoved(
            community_id=rule.community_id,
            rule_id=rule.id,
            removed_by_user_id=by,
            remove_time=timestamp(now),
        ),
        community_id=rule.community_id,
        subject=_subject(rule),
    )


def _subject(rule: KeywordRule) -> str:
    return f"communities/{rule.community_id}/keyword-rules/{rule.id}"
