"""Paid content in the content database: the projection of billing's entitlements and the
posts that need one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.paid.domain import active
from services.content.store.tables import entitlements, paid_posts
from services.kit.database import utc
from services.kit.projection import upsert, upsert_newer


async def apply_entitlements(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Keep the newest version of each entitlement, whatever order the facts arrive in."""
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        held = newest.get(row["entitlement_id"])
        if held is None or held["version"] < row["version"]:
            newest[row["entitlement_id"]] = row
    if newest:
        await upsert_newer(session, entitlements, list(newest.values()), ["entitlement_id"])


async def entitled_products(
    session: AsyncSession, community_id: str, user_id: str, products: Sequence[str], now: datetime
) -> set[str]:
    """The products among `products` the member holds an entitlement to now."""
    if not products or not user_id:
        return set()
    rows = await session.execute(
        select(entitlements.c.product_id, entitlements.c.start_at, entitlements.c.end_at).where(
            entitlements.c.community_id == community_id,
            entitlements.c.user_id == user_id,
            entitlements.c.product_id.in_(sorted(set(products))),
        )
    )
    return {
        row.product_id
        for row in rows
        if active(
            utc(row.start_at) if row.start_at else None,
            utc(row.end_at) if row.end_at else None,
            now,
        )
    }


async def products_of_posts(session: AsyncSession, post_ids: Sequence[str]) -> dict[str, str]:
    if not post_ids:
        return {}
    rows = await session.execute(
        select(paid_posts.c.post_id, paid_posts.c.product_id).where(
            paid_posts.c.post_id.in_(list(post_ids))
        )
    )
    return {row.post_id: row.product_id for row in rows}


async def set_post_product(
    session: AsyncSession, community_id: str, post_id: str, product_id: str, by: str, now: datetime
) -> None:
    if not product_id:
        await session.execute(delete(paid_posts).where(paid_posts.c.post_id == post_id))
        return
    await upsert(
        session,
        paid_posts,
        [
            {
                "post_id": post_id,
                "community_id": community_id,
                "product_id": product_id,
                "set_by": by,
                "set_at": now,
            }
        ],
        ["post_id"],
    )
