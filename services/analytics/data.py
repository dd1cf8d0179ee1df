"""What analytics holds about a member, for ExportMyData and EraseMyData (and MemberErased).

Erasure keeps every figure right and drops the identity (docs/decisions/0033): the member's
rows are renamed to a pseudonym drawn at random, and a tombstone (a digest of community and
user id, and that pseudonym) makes every later fact about them, live or replayed by
`rebuild`, land on the pseudonym too. Counts, unique counts and cohorts stay as they were;
nothing links the rows to the person any more.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.store.rollups import NAMED, erase_member
from services.analytics.store.tables import (
    member_days,
    member_firsts,
    member_states,
    posts,
    registrations,
    subscriptions,
)


async def export_counted(
    session: AsyncSession, community_id: str, user_id: str
) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(member_states.c.active, member_states.c.version).where(
                member_states.c.community_id == community_id, member_states.c.user_id == user_id
            )
        )
    ).first()
    return None if row is None else {"counted": bool(row.active), "version": int(row.version)}


async def export_active_days(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(member_days)
        .where(member_days.c.community_id == community_id, member_days.c.user_id == user_id)
        .order_by(member_days.c.day)
    )
    return [
        {key: _plain(value) for key, value in row._mapping.items() if key != "community_id"}
        for row in rows
    ]


async def export_funnel(
    session: AsyncSession, community_id: str, user_id: str
) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(member_firsts).where(
                member_firsts.c.community_id == community_id, member_firsts.c.user_id == user_id
            )
        )
    ).first()
    if row is None:
        return None
    return {key: _plain(value) for key, value in row._mapping.items() if key != "community_id"}


def _ids(table: Table, id_column: str, user_column: str = "user_id") -> Any:
    async def export(session: AsyncSession, community_id: str, user_id: str) -> list[str]:
        rows = await session.scalars(
            select(table.c[id_column])
            .where(table.c.community_id == community_id, table.c[user_column] == user_id)
            .order_by(table.c[id_column])
        )
        return list(rows)

    return export


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


async def erase(session: AsyncSession, community_id: str, user_id: str) -> None:
    """Pass the member's rows to a pseudonym; nothing to do for someone analytics never
    counted (members' own MemberErased, which the consumer of members' stream applies in
    order with the member's joins, tombstones them whatever they hold)."""
    for table, column in NAMED:
        found = await session.scalar(
            select(table.c[column])
            .where(table.c.community_id == community_id, table.c[column] == user_id)
            .limit(1)
        )
        if found is not None:
            await erase_member(session, community_id, user_id)
            return


EXPORTS = {
    "member_count": export_counted,
    "active_days": export_active_days,
    "funnel": export_funnel,
    "posts": _ids(posts, "post_id", "author_user_id"),
    "registrations": _ids(registrations, "registration_id"),
    "subscriptions": _ids(subscriptions, "subscription_id"),
}
ERASERS = (erase,)
