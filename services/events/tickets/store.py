"""Events' projection of billing's entitlements to event tickets, and the held seats a
ticket confirms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import ActivityState
from services.events.registration.domain import RegistrationState
from services.events.store.tables import activities, registrations, ticket_entitlements
from services.kit.database import utc
from services.kit.projection import upsert_newer

Pair = tuple[str, str]  # (user id, product id)


class TicketEntitlements:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, row: dict[str, Any]) -> None:
        """A grant or a revocation, unless a newer version of it is there already."""
        await upsert_newer(self.session, ticket_entitlements, [row], ["entitlement_id"])

    async def is_active(self, entitlement_id: str, now: datetime) -> bool:
        """Whether the entitlement, as it stands after the newest fact, gives access now."""
        row = (
            await self.session.execute(
                select(ticket_entitlements).where(
                    ticket_entitlements.c.entitlement_id == entitlement_id
                )
            )
        ).first()
        return row is not None and _gives_access(row, now)

    async def entitled(self, community_id: str, pairs: set[Pair], now: datetime) -> set[Pair]:
        """Which of the (user, product) pairs hold an entitlement giving access now."""
        if not pairs:
            return set()
        t = ticket_entitlements.c
        rows = await self.session.execute(
            select(ticket_entitlements).where(
                t.community_id == community_id,
                t.user_id.in_({user for user, _ in pairs}),
                t.product_id.in_({product for _, product in pairs}),
                t.active == 1,
            )
        )
        return {
            (row.user_id, row.product_id)
            for row in rows
            if (row.user_id, row.product_id) in pairs and _gives_access(row, now)
        }

    async def held_for(self, community_id: str, user_id: str, product_id: str) -> list[str]:
        """The activities of the community sold with `product_id` where a seat is held for
        the member, scheduled and not started."""
        rows = await self.session.scalars(
            select(registrations.c.activity_id)
            .join(activities, activities.c.id == registrations.c.activity_id)
            .where(
                registrations.c.community_id == community_id,
                registrations.c.user_id == user_id,
                registrations.c.state == int(RegistrationState.HELD),
                activities.c.ticket_product_id == product_id,
                activities.c.state == int(ActivityState.SCHEDULED),
            )
            .order_by(registrations.c.activity_id)
        )
        return list(rows)

    async def cancelled_for(
        self, community_id: str, user_id: str, product_id: str
    ) -> list[tuple[str, str]]:
        """(activity id, registration id) of the member's cancelled registrations at
        activities sold with `product_id`, scheduled and not started: where a ticket paid
        for now has no seat to confirm."""
        rows = await self.session.execute(
            select(registrations.c.activity_id, registrations.c.id)
            .join(activities, activities.c.id == registrations.c.activity_id)
            .where(
                registrations.c.community_id == community_id,
                registrations.c.user_id == user_id,
                registrations.c.state == int(RegistrationState.CANCELLED),
                activities.c.ticket_product_id == product_id,
                activities.c.state == int(ActivityState.SCHEDULED),
            )
            .order_by(registrations.c.activity_id)
        )
        return [(activity_id, registration_id) for activity_id, registration_id in rows]

    async def of_member(self, community_id: str, user_id: str) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            select(ticket_entitlements)
            .where(
                ticket_entitlements.c.community_id == community_id,
                ticket_entitlements.c.user_id == user_id,
            )
            .order_by(ticket_entitlements.c.entitlement_id)
        )
        return [
            {
                "entitlement_id": row.entitlement_id,
                "product_id": row.product_id,
                "active": bool(row.active),
                "end_time": utc(row.end_time) if row.end_time else None,
            }
            for row in rows
        ]

    async def forget_member(self, community_id: str, user_id: str) -> None:
        await self.session.execute(
            delete(ticket_entitlements).where(
                and_(
                    ticket_entitlements.c.community_id == community_id,
                    ticket_entitlements.c.user_id == user_id,
                )
            )
        )


def _gives_access(row: Any, now: datetime) -> bool:
    if not row.active:
        return False
    starts = utc(row.start_time) if row.start_time is not None else None
    ends = utc(row.end_time) if row.end_time is not None else None
    return (starts is None or starts <= now) and (ends is None or now < ends)
