"""What recognition holds about a member: their points ledger, badges and standing, and the
kudos they gave. Erasure deletes the member's own entries, badges and standing (the caller
drops the leaderboards, which are rebuilt without them); kudos they gave stay with their
receivers, whose points they are, but lose the giver's id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.data_rights import Eraser, Exporter
from services.kit.database import utc
from services.members.recognition.points import KUDOS_REASON
from services.members.store.tables import member_activity, member_badges, points_ledger


async def _export_ledger(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(points_ledger)
        .where(points_ledger.c.community_id == community_id, points_ledger.c.user_id == user_id)
        .order_by(points_ledger.c.id)
    )
    return [
        {
            "entry_id": row.id,
            "amount": row.amount,
            "reason": row.reason,
            "awarded_by_user_id": row.awarded_by,
            "note": row.note,
            "create_time": utc(row.created_at),
            "local_date": row.local_date.isoformat(),
        }
        for row in rows
    ]


async def _export_badges(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(member_badges.c.code, member_badges.c.awarded_at)
        .where(member_badges.c.community_id == community_id, member_badges.c.user_id == user_id)
        .order_by(member_badges.c.awarded_at)
    )
    return [{"code": row.code, "award_time": utc(row.awarded_at)} for row in rows]


async def _export_standing(
    session: AsyncSession, community_id: str, user_id: str
) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(member_activity).where(
                member_activity.c.community_id == community_id,
                member_activity.c.user_id == user_id,
            )
        )
    ).first()
    if row is None:
        return None
    return {
        "points_total": row.points_total,
        "level": row.level,
        "last_active_time": utc(row.last_active_at) if row.last_active_at else None,
    }


async def _export_kudos_given(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(points_ledger.c.user_id, points_ledger.c.created_at)
        .where(_kudos_given_by(community_id, user_id))
        .order_by(points_ledger.c.id)
    )
    return [{"to_user_id": row.user_id, "give_time": utc(row.created_at)} for row in rows]


async def _erase_own(session: AsyncSession, community_id: str, user_id: str) -> None:
    for table in (points_ledger, member_badges, member_activity):
        await session.execute(
            delete(table).where(table.c.community_id == community_id, table.c.user_id == user_id)
        )


async def _anonymise_kudos_given(session: AsyncSession, community_id: str, user_id: str) -> None:
    # The source id named the giver (kudos:<giver>:<recipient>:<day>); each entry keeps a
    # unique one that names nobody.
    await session.execute(
        update(points_ledger)
        .where(_kudos_given_by(community_id, user_id))
        .values(
            awarded_by="",
            source_event_id=literal("kudos:erased:", String) + cast(points_ledger.c.id, String),
        )
    )


def _kudos_given_by(community_id: str, user_id: str) -> Any:
    return (
        (points_ledger.c.community_id == community_id)
        & (points_ledger.c.reason == KUDOS_REASON)
        & (points_ledger.c.awarded_by == user_id)
    )


# The sections this capability adds to a member's export, and what erasure runs here.
EXPORTS: dict[str, Exporter] = {
    "points_ledger": _export_ledger,
    "badges": _export_badges,
    "standing": _export_standing,
    "kudos_given": _export_kudos_given,
}
ERASERS: tuple[Eraser, ...] = (_anonymise_kudos_given, _erase_own)
