"""The one entitlement engine: paid products and admins' grants become entitlements, and
each change leaves as EntitlementGranted or EntitlementRevoked through the outbox, in the
transaction of the change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.catalog.domain import Product
from services.billing.entitlements import domain
from services.billing.entitlements.domain import Entitlement
from services.billing.entitlements.store import EntitlementRepository
from services.billing.store.outbox import OUTBOX
from services.kit.timestamps import timestamp, timestamp_or_none
from studyhall.billing.v1 import billing_events_pb2 as events


async def grant_paid(
    session: AsyncSession,
    community_id: str,
    user_id: str,
    charge_id: str,
    products: Sequence[Product],
    now: datetime,
) -> list[Entitlement]:
    """What a succeeded charge buys: one entitlement per product."""
    made = [
        domain.purchased(community_id, user_id, product.id, product.billing_period, charge_id, now)
        for product in products
    ]
    await EntitlementRepository(session).save(made)
    for item in made:
        await _publish(session, item)
    return made


async def grant(session: AsyncSession, item: Entitlement) -> None:
    await EntitlementRepository(session).save([item])
    await _publish(session, item)


async def revoke(session: AsyncSession, item: Entitlement, now: datetime) -> Entitlement:
    revoked = domain.revoke(item, now)
    if revoked is not item:
        await EntitlementRepository(session).save([revoked])
        await _publish(session, revoked)
    return revoked


async def revoke_paid(session: AsyncSession, charge_id: str, now: datetime) -> None:
    """A charge paid back in full: what it bought ends now."""
    for item in await EntitlementRepository(session).of_charge(charge_id):
        await revoke(session, item, now)


async def _publish(session: AsyncSession, item: Entitlement) -> None:
    fields: dict[str, Any] = {
        "entitlement_id": item.id,
        "community_id": item.community_id,
        "user_id": item.user_id,
        "product_id": item.product_id,
        "start_time": timestamp(item.start_at),
        "end_time": timestamp_or_none(item.end_at),
        "source": events.EntitlementSource.ValueType(int(item.source)),
        "version": item.version,
    }
    event = (
        events.EntitlementRevoked(**fields) if item.revoked else events.EntitlementGranted(**fields)
    )
    await OUTBOX.add(
        session,
        event,
        community_id=item.community_id,
        subject=f"communities/{item.community_id}/entitlements/{item.id}",
    )
