"""A ticket whose seat hold expired is refunded: the events service's RegistrationCancelled
(reason hold_expired, with the ticket's product) reaches billing over the real bus, and
billing pays back the member's purchase once, through the sandbox provider process and its
signed webhook, which revokes the entitlement. A fact delivered twice, or about a ticket
never bought, refunds nothing more. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from services.billing.app import SPEC
from services.billing.settings import BillingSettings
from services.billing.store.tables import refunds
from services.kit.access import Role
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc
from studyhall.events.v1 import activities_events_pb2 as events_pb
from tests.support.access import grant
from tests.support.billing import API_KEY, SECRET, sandbox
from tests.support.bus import bus
from tests.support.services import free_port, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service


def _unused(community_id: str, user: str, product_id: str) -> events_pb.TicketUnused:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return events_pb.TicketUnused(
        community_id=community_id,
        user_id=user,
        product_id=product_id,
        activity_id=str(uuid.uuid4()),
        registration_id=str(uuid.uuid4()),
        entitlement_id=str(uuid.uuid4()),
        found_time=stamp,
    )


def _expired(community_id: str, user: str, product_id: str) -> events_pb.RegistrationCancelled:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return events_pb.RegistrationCancelled(
        registration_id=str(uuid.uuid4()),
        activity_id=str(uuid.uuid4()),
        community_id=community_id,
        user_id=user,
        reason=events_pb.REGISTRATION_CANCEL_REASON_HOLD_EXPIRED,
        version=2,
        cancel_time=stamp,
        ticket_product_id=product_id,
    )


async def test_a_ticket_whose_hold_expired_is_refunded_once(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    port = free_port()
    with sandbox(data_dir / "sandbox", f"http://127.0.0.1:{port}/webhooks/provider") as provider:
        async with (
            running_service(
                SPEC,
                BillingSettings,
                database_url=database_url,
                redis_url=redis_url,
                nats_url=nats_url,
                data_dir=data_dir,
                relay="external",
                provider_url=provider.url,
                provider_api_key=API_KEY,
                webhook_secret=SECRET,
                webhook_port=port,
            ) as billing,
            bus(nats_url, ["events"]) as facts,
        ):
            stub = pb_grpc.BillingServiceStub(billing.channel)
            community_id = str(uuid.uuid4())
            await grant(billing, community_id, "olga", Role.OWNER)
            await grant(billing, community_id, "mia", Role.MEMBER)
            ticket = await stub.CreateProduct(
                pb.CreateProductRequest(
                    community_id=community_id,
                    kind=pb.PRODUCT_KIND_EVENT_TICKET,
                    name="IELTS writing workshop",
                    price=pb.Money(currency="EUR", amount_minor=2500),
                    billing_period=pb.BILLING_PERIOD_ONE_OFF,
                ),
                metadata=billing.auth("olga"),
            )
            product_id = ticket.product.id
            bought = await stub.CreateCheckout(
                pb.CreateCheckoutRequest(
                    community_id=community_id,
                    product_ids=[product_id],
                    payment_method="pm_card_visa",
                    bill_to="Mia Park, 1 Library Lane",
                ),
                metadata=billing.auth("mia"),
            )

            async def mine() -> pb.GetMyBillingResponse:
                reply: pb.GetMyBillingResponse = await stub.GetMyBilling(
                    pb.GetMyBillingRequest(community_id=community_id),
                    metadata=billing.auth("mia"),
                )
                return reply

            async def entitled() -> bool:
                return [e.revoked for e in (await mine()).entitlements] == [False]

            await eventually(entitled, "the ticket paid and its entitlement granted", seconds=20)

            expired = _expired(community_id, "mia", product_id)
            await facts.publish(expired)
            await facts.publish(expired)  # delivered again under another event id
            # The late grant's TicketUnused for the same charge: still paid back once.
            await facts.publish(_unused(community_id, "mia", product_id))
            # Another member's hold, who never bought the ticket: nothing to pay back.
            await facts.publish(_expired(community_id, "max", product_id))
            await facts.caught_up(["events"], "billing-tickets")

            async def paid_back() -> bool:
                reply = await mine()
                return [r.amount.amount_minor for r in reply.refunds] == [2500] and [
                    e.revoked for e in reply.entitlements
                ] == [True]

            await eventually(paid_back, "the ticket refunded and revoked", seconds=20)
            async with billing.deps.database.read() as session:
                kept = await session.scalar(
                    select(func.count())
                    .select_from(refunds)
                    .where(refunds.c.charge_id == bought.charge.id)
                )
            assert kept == 1

            # Paid for after the seat was gone: events' TicketUnused alone pays it back, once.
            await grant(billing, community_id, "noa", Role.MEMBER)
            late = await stub.CreateCheckout(
                pb.CreateCheckoutRequest(
                    community_id=community_id,
                    product_ids=[product_id],
                    payment_method="pm_card_visa",
                    bill_to="Noa Berg, 2 Library Lane",
                ),
                metadata=billing.auth("noa"),
            )

            async def noa_refunded() -> bool:
                async with billing.deps.database.read() as session:
                    count = await session.scalar(
                        select(func.count())
                        .select_from(refunds)
                        .where(refunds.c.charge_id == late.charge.id)
                    )
                return count == 1

            async def noa_entitled() -> bool:
                reply = await stub.GetMyBilling(
                    pb.GetMyBillingRequest(community_id=community_id),
                    metadata=billing.auth("noa"),
                )
                return [e.revoked for e in reply.entitlements] == [False]

            await eventually(noa_entitled, "noa's ticket paid", seconds=20)
            unused = _unused(community_id, "noa", product_id)
            await facts.publish(unused)
            await facts.publish(unused)
            await facts.caught_up(["events"], "billing-tickets")
            await eventually(noa_refunded, "noa's unused ticket paid back", seconds=20)
            await asyncio.sleep(0.5)  # a second refund would be recorded by now
            assert await noa_refunded()
