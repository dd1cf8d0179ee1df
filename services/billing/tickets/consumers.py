"""What billing learns from the events service about tickets: a seat hold that expired
before the ticket was paid for is refunded, and so is a ticket paid for after its seat was
gone (TicketUnused) (docs/decisions/0047). A charge is paid back once, whichever comes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.payments.provider import PaymentProvider
from services.billing.tickets.refunds import refund_ticket, submit
from services.kit.database import Database
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from studyhall.events.v1 import activities_events_pb2 as activities_events

HOLD_EXPIRED = activities_events.REGISTRATION_CANCEL_REASON_HOLD_EXPIRED


class TicketRefunds:
    """The durable consumer of expired ticket holds; refunds recorded in its transaction go
    to the provider once it commits."""

    def __init__(self, database: Database, provider: PaymentProvider) -> None:
        self.database = database
        self.provider = provider
        self._tasks: set[asyncio.Task[None]] = set()

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription(
                name="billing-tickets-expired-holds",
                source_service="events",
                event_types=(
                    activities_events.RegistrationCancelled,
                    activities_events.TicketUnused,
                ),
                apply=self.apply,
            )
        ]

    async def apply(self, session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
        now = datetime.now(UTC)
        recorded: list[str] = []
        for event, _ in batch:
            if isinstance(event, activities_events.TicketUnused):
                product_id = event.product_id  # paid for after the seat was gone
            elif event.reason == HOLD_EXPIRED:
                product_id = event.ticket_product_id  # the seat went before the payment came
            else:
                continue
            if not product_id:
                continue
            refund = await refund_ticket(
                session, event.community_id, event.user_id, product_id, now
            )
            if refund is not None:
                recorded.append(refund.id)
        if recorded:
            self._after_commit(session, recorded)

    def _after_commit(self, session: AsyncSession, refund_ids: list[str]) -> None:
        def committed(_session: Any) -> None:
            for refund_id in refund_ids:
                task = asyncio.get_running_loop().create_task(
                    submit(self.database, self.provider, refund_id)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        orm_event.listen(session.sync_session, "after_commit", committed, once=True)
