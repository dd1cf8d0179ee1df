"""Enforcing paid content on reads: the gate handed to the posts capability and the
entitlement check handed to learning paths (app.py wires both)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.paid.store import entitled_products, products_of_posts
from services.kit.access import Role, Standing
from services.kit.auth import Identity
from studyhall.content.v1 import content_service_pb2 as pb


class PaidGate:
    async def guard(
        self, session: AsyncSession, caller: Identity, standing: Standing, shown: Sequence[pb.Post]
    ) -> list[str]:
        """Mark the paid posts among `shown`; blank body, url and media of those the caller
        may not read (never a snippet of them), and return their ids."""
        products = await products_of_posts(session, [post.id for post in shown])
        if not products:
            return []
        community_id = shown[0].community_id
        held = await entitled_products(
            session, community_id, caller.user_id, list(products.values()), datetime.now(UTC)
        )
        locked: list[str] = []
        for post in shown:
            product = products.get(post.id)
            if product is None:
                continue
            post.required_product_id = product
            if product in held or exempt(caller, standing, post.author_user_id):
                continue
            post.locked = True
            post.body = ""
            post.url = ""
            del post.media[:]
            locked.append(post.id)
        return locked


async def entitled(session: AsyncSession, community_id: str, user_id: str, product: str) -> bool:
    held = await entitled_products(session, community_id, user_id, [product], datetime.now(UTC))
    return product in held


def exempt(caller: Identity, standing: Standing, author_user_id: str) -> bool:
    """Authors, moderators and operators read paid content without an entitlement."""
    if caller.operator or (standing.role is not None and standing.role >= Role.MODERATOR):
        return True
    return bool(author_user_id) and author_user_id == caller.user_id
