"""What tickets learn from billing: EntitlementGranted and EntitlementRevoked kept as a
projection (newest version wins), and a grant for an activity's ticket confirms the seat
held for the member (docs/decisions/0047). A grant that finds no held seat (the hold
expired first) confirms nothing: billing refunds that ticket on RegistrationCancelled with
reason hold_expired, and on TicketUnused when the member's registration there was cancelled
(the grant arrived after the hold ran out)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.store import ActivityRepository
from services.events.registration import seats
from services.events.registration.domain import RegistrationState
from services.events.registration.store import RegistrationRepository
from services.events.store.outbox import OUTBOX
from services.events.tickets.store import TicketEntitlements
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from services.kit.timestamps import timestamp
from studyhall.billing.v1 import billing_events_pb2 as billing_events
from studyhall.events.v1 import activities_events_pb2 as activities_events


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            name="events-tickets-entitlements",
            source_service="billing",
            event_types=(billing_events.EntitlementGranted, billing_events.EntitlementRevoked),
            apply=apply,
        )
    ]


async def apply(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
    now = datetime.now(UTC)
    tickets = TicketEntitlements(session)
    for event, _ in batch:
        granted = isinstance(event, billing_events.EntitlementGranted)
        await tickets.record(
            {
                "entitlement_id": event.entitlement_id,
                "community_id": event.community_id,
                "user_id": event.user_id,
                "product_id": event.product_id,
                "start_time": _time(event.start_time),
                "end_time": _time(event.end_time),
                "active": int(granted),
                "version": event.version,
            }
        )
        # Confirm only what the newest fact allows: a grant older than a revocation that
        # already arrived confirms nothing.
        if not granted or not await tickets.is_active(event.entitlement_id, now):
            continue
        if await confirm_held(session, event.community_id, event.user_id, event.product_id, now):
            continue
        unused = await tickets.cancelled_for(event.community_id, event.user_id, event.product_id)
        if unused:
            # Paid after the seat was gone: billing pays it back (once per charge).
            activity_id, registration_id = unused[0]
            await OUTBOX.add(
                session,
                activities_events.TicketUnused(
                    community_id=event.community_id,
                    user_id=event.user_id,
                    product_id=event.product_id,
                    activity_id=activity_id,
                    registration_id=registration_id,
                    entitlement_id=event.entitlement_id,
                    found_time=timestamp(now),
                ),
                community_id=event.community_id,
                subject=f"communities/{event.community_id}/activities/{activity_id}/tickets",
            )


async def confirm_held(
    session: AsyncSession, community_id: str, user_id: str, product_id: str, now: datetime
) -> int:
    """Confirms the member's seats held at activities sold with `product_id`; how many."""
    confirmed = 0
    activities = ActivityRepository(session)
    registrations = RegistrationRepository(session)
    for activity_id in await TicketEntitlements(session).held_for(
        community_id, user_id, product_id
    ):
        # The activity's row first, as every registration change locks it (seats).
        activity = await activities.get(community_id, activity_id, for_update=True)
        registration = await registrations.of_member(activity_id, user_id, for_update=True)
        if activity is None or registration is None:
            continue
        if registration.state is RegistrationState.HELD:
            await seats.confirm(session, registration, now)
            confirmed += 1
    return confirmed


def _time(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None
