"""The projection of billing's entitlements, fed by EntitlementGranted and
EntitlementRevoked through the kit's consumer and inbox: both carry the entitlement's
whole window and version, so applying the newest version is all either needs."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.paid.store import apply_entitlements
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from studyhall.billing.v1 import billing_events_pb2 as billing_events


async def apply(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
    rows = [
        {
            "entitlement_id": event.entitlement_id,
            "community_id": event.community_id,
            "user_id": event.user_id,
            "product_id": event.product_id,
            "start_at": event.start_time.ToDatetime(tzinfo=UTC)
            if event.HasField("start_time")
            else None,
            "end_at": event.end_time.ToDatetime(tzinfo=UTC) if event.HasField("end_time") else None,
            "version": int(event.version),
        }
        for event, _envelope in batch
    ]
    await apply_entitlements(session, rows)


def entitlements_subscription() -> Subscription:
    return Subscription(
        name="content-entitlements",
        source_service="billing",
        event_types=(billing_events.EntitlementGranted, billing_events.EntitlementRevoked),
        apply=apply,
    )
