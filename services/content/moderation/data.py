"""What moderation holds about a member, for ExportMyData and EraseMyData (and
MemberErased): the moderation of their posts (with their appeals) and the moderation steps
they took. Erasure removes their name from both and blanks their appeal statements; the
decisions stay, as the community's record of what was shown."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import moderation_cases, moderation_log
from services.kit.database import utc


async def export_cases(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(moderation_cases)
        .where(
            moderation_cases.c.community_id == community_id,
            moderation_cases.c.author_user_id == user_id,
        )
        .order_by(moderation_cases.c.decided_at, moderation_cases.c.target_id)
    )
    return [
        {
            "target_kind": row.target_kind,
            "target_id": row.target_id,
            "status": row.status,
            "reason": row.reason,
            "decide_time": utc(row.decided_at),
            "appealed": bool(row.appealed),
            "appeal_statement": row.appeal_statement,
        }
        for row in rows
    ]


async def export_log(session: AsyncSession, community_id: str, user_id: str) -> list[Any]:
    rows = await session.execute(
        select(moderation_log)
        .where(
            moderation_log.c.community_id == community_id,
            moderation_log.c.actor_user_id == user_id,
        )
        .order_by(moderation_log.c.at, moderation_log.c.id)
    )
    return [
        {
            "action": row.action,
            "target_kind": row.target_kind,
            "target_id": row.target_id,
            "reason": row.reason,
            "time": utc(row.at),
        }
        for row in rows
    ]


async def forget_member(session: AsyncSession, community_id: str, user_id: str) -> None:
    await session.execute(
        update(moderation_cases)
        .where(
            moderation_cases.c.community_id == community_id,
            moderation_cases.c.author_user_id == user_id,
        )
        .values(author_user_id="", appeal_statement="")
    )
    await session.execute(
        update(moderation_cases)
        .where(
            moderation_cases.c.community_id == community_id,
            moderation_cases.c.actor_user_id == user_id,
        )
        .values(actor_user_id="")
    )
    # The author's appeals are logged with their statement: both go.
    await session.execute(
        update(moderation_log)
        .where(
            moderation_log.c.community_id == community_id,
            moderation_log.c.actor_user_id == user_id,
            moderation_log.c.action == "appeal",
        )
        .values(actor_user_id="", reason="")
    )
    await session.execute(
        update(moderation_log)
        .where(
            moderation_log.c.community_id == community_id,
            moderation_log.c.actor_user_id == user_id,
        )
        .values(actor_user_id="")
    )


EXPORTS = {"moderation_cases": export_cases, "moderation_log": export_log}
ERASERS = (forget_member,)
