"""Paid tickets through both services: events and billing (with the sandbox payment provider
process) on the real bus. Concurrent buyers take the last seats of a paid activity, never
more than its capacity; a buyer who pays in time is seated and keeps the payment; every
buyer whose hold ran out before their payment completed is refunded once, and loses the
entitlement. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from services.billing.app import SPEC as BILLING
from services.billing.settings import BillingSettings
from services.billing.store.tables import refunds
from services.events.app import SPEC as EVENTS
from services.events.settings import EventsSettings
from services.kit.access import Role
from studyhall.billing.v1 import billing_service_pb2 as bpb
from studyhall.billing.v1 import billing_service_pb2_grpc as bpb_grpc
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.billing import API_KEY, SECRET, sandbox
from tests.support.services import free_port, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

SEATED, HELD, CANCELLED = (
    pb.REGISTRATION_STATE_SEATED,
    pb.REGISTRATION_STATE_HELD,
    pb.REGISTRATION_STATE_CANCELLED,
)
CAPACITY = 3
BUYERS = [f"buyer-{n}" for n in range(7)]


async def test_the_last_paid_seats_never_oversell_and_every_late_payment_is_refunded(
    database_url: str, second_database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    port = free_port()
    with sandbox(data_dir / "sandbox", f"http://127.0.0.1:{port}/webhooks/provider") as provider:
        async with (
            running_service(
                BILLING,
                BillingSettings,
                database_url=second_database_url,
                redis_url=redis_url,
                nats_url=nats_url,
                data_dir=data_dir,
                provider_url=provider.url,
                provider_api_key=API_KEY,
                webhook_secret=SECRET,
                webhook_port=port,
            ) as billing,
            running_service(
                EVENTS,
                EventsSettings,
                database_url=database_url,
                redis_url=redis_url,
                nats_url=nats_url,
                data_dir=data_dir,
            ) as events,
        ):
            community_id = str(uuid.uuid4())
            for service in (billing, events):
                await grant(service, community_id, "olga", Role.OWNER)
                for user in BUYERS:
                    await grant(service, community_id, user, Role.MEMBER)
            shop = bpb_grpc.BillingServiceStub(billing.channel)
            ticket = await shop.CreateProduct(
                bpb.CreateProductRequest(
                    community_id=community_id,
                    kind=bpb.PRODUCT_KIND_EVENT_TICKET,
                    name="Mock exam, speaking",
                    price=bpb.Money(currency="EUR", amount_minor=1500),
                    billing_period=bpb.BILLING_PERIOD_ONE_OFF,
                ),
                metadata=billing.auth("olga"),
            )
            product_id = ticket.product.id
            stub = pb_grpc.ActivitiesServiceStub(events.channel)
            start = Timestamp()
            start.FromDatetime(datetime.now(UTC) + timedelta(hours=2))
            made = await stub.CreateActivity(
                pb.CreateActivityRequest(
                    community_id=community_id,
                    kind=pb.ACTIVITY_KIND_ONLINE_LECTURE,
                    title="Mock exam",
                    start_time=start,
                    capacity=CAPACITY,
                    seat_hold=Duration(seconds=5),  # time to pay on a loaded machine
                ),
                metadata=events.auth("olga"),
            )
            activity_id = made.activity.id
            await stub.SetActivityTicket(
                pb.SetActivityTicketRequest(
                    community_id=community_id, activity_id=activity_id, product_id=product_id
                ),
                metadata=events.auth("olga"),
            )

            async def states() -> dict[str, int]:
                listed = await stub.ListRegistrations(
                    pb.ListRegistrationsRequest(
                        community_id=community_id, activity_id=activity_id, page_size=100
                    ),
                    metadata=events.auth("olga"),
                )
                found = {r.user_id: r.state for r in listed.registrations}
                assert sum(s in (SEATED, HELD) for s in found.values()) <= CAPACITY
                return found

            async def pay(user: str) -> str:
                bought = await shop.CreateCheckout(
                    bpb.CreateCheckoutRequest(
                        community_id=community_id,
                        product_ids=[product_id],
                        payment_method="pm_card_visa",
                        bill_to=f"{user}, 1 Library Lane",
                    ),
                    metadata=billing.auth(user),
                )
                return str(bought.charge.id)

            await asyncio.gather(
                *(
                    stub.Register(
                        pb.RegisterRequest(community_id=community_id, activity_id=activity_id),
                        metadata=events.auth(user),
                    )
                    for user in BUYERS
                )
            )
            first = await states()
            held = sorted(user for user, state in first.items() if state == HELD)
            assert len(held) == CAPACITY
            on_time, late = held[0], held[1:]
            charges = {on_time: await pay(on_time)}

            async def seated() -> bool:
                return (await states())[on_time] == SEATED

            await eventually(seated, "the buyer who paid in time seated", seconds=30)

            async def ran_out() -> bool:
                found = await states()
                return all(found[user] == CANCELLED for user in late)

            await eventually(ran_out, "the other holds ran out", seconds=30)
            for user in late:  # paying now, after their seat is gone
                charges[user] = await pay(user)

            async def refunded(charge_id: str) -> int:
                async with billing.deps.database.read() as session:
                    return int(
                        await session.scalar(
                            select(func.count())
                            .select_from(refunds)
                            .where(refunds.c.charge_id == charge_id)
                        )
                        or 0
                    )

            async def late_ones_paid_back() -> bool:
                return all([await refunded(charges[user]) == 1 for user in late])

            await eventually(late_ones_paid_back, "each late payment refunded", seconds=40)

            async def revoked(user: str) -> list[bool]:
                mine = await shop.GetMyBilling(
                    bpb.GetMyBillingRequest(community_id=community_id),
                    metadata=billing.auth(user),
                )
                return [e.revoked for e in mine.entitlements]

            async def late_ones_revoked() -> bool:
                return all([await revoked(user) == [True] for user in late])

            await eventually(late_ones_revoked, "the late tickets revoked", seconds=30)
            await asyncio.sleep(1.0)  # a second refund, or one for the seated buyer, by now
            assert await refunded(charges[on_time]) == 0
            assert await revoked(on_time) == [False]
            assert [await refunded(charges[user]) for user in late] == [1] * len(late)
            final = await states()
            assert final[on_time] == SEATED
            assert all(final[user] == CANCELLED for user in late)
