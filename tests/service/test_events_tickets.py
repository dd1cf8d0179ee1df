"""Paid tickets: registering for an activity sold with a billing product holds a seat while
the member pays; billing's EntitlementGranted for the product (over the real bus) confirms
it; an expired hold frees the seat for the waitlist and names the product in
RegistrationCancelled (reason hold_expired), for billing to refund. Concurrent buyers of
the last seats never take more than the capacity, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from services.events.app import SPEC as EVENTS
from services.events.settings import EventsSettings
from services.events.store.tables import outbox
from services.kit.access import Role
from studyhall.billing.v1 import billing_events_pb2 as billing_events
from studyhall.events.v1 import activities_events_pb2 as events_pb
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc
from tests.support.access import grant
from tests.support.bus import bus
from tests.support.services import running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

SEATED, HELD, WAITLISTED, CANCELLED = (
    pb.REGISTRATION_STATE_SEATED,
    pb.REGISTRATION_STATE_HELD,
    pb.REGISTRATION_STATE_WAITLISTED,
    pb.REGISTRATION_STATE_CANCELLED,
)
CAPACITY = 4
BUYERS = [f"buyer-{n:02}" for n in range(12)]


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _granted(community_id: str, user: str, product_id: str) -> Any:
    return billing_events.EntitlementGranted(
        entitlement_id=str(uuid.uuid4()),
        community_id=community_id,
        user_id=user,
        product_id=product_id,
        start_time=_at(datetime.now(UTC) - timedelta(minutes=1)),
        source=billing_events.ENTITLEMENT_SOURCE_PURCHASE,
        version=1,
    )


async def test_the_last_paid_seats_go_to_concurrent_buyers_and_each_expired_hold_is_released(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    async with (
        running_service(
            EVENTS,
            EventsSettings,
            database_url=database_url,
            relay="external",  # the facts stay in the outbox for the test to read
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=data_dir,
        ) as events,
        bus(nats_url, ["billing"]) as billing,
    ):
        community_id, product_id = str(uuid.uuid4()), str(uuid.uuid4())
        stub = pb_grpc.ActivitiesServiceStub(events.channel)
        await grant(events, community_id, "olga", Role.OWNER)
        for user in ["early", *BUYERS]:
            await grant(events, community_id, user, Role.MEMBER)
        start = datetime.now(UTC) + timedelta(hours=1)
        made = await stub.CreateActivity(
            pb.CreateActivityRequest(
                community_id=community_id,
                kind=pb.ACTIVITY_KIND_ONLINE_LECTURE,
                title="Paid workshop: IELTS writing",
                start_time=_at(start),
                capacity=CAPACITY,
                seat_hold=Duration(seconds=3),
            ),
            metadata=events.auth("olga"),
        )
        activity_id = made.activity.id
        sold = await stub.SetActivityTicket(
            pb.SetActivityTicketRequest(
                community_id=community_id, activity_id=activity_id, product_id=product_id
            ),
            metadata=events.auth("olga"),
        )
        assert sold.activity.ticket_product_id == product_id

        async def register(user: str) -> pb.Registration:
            reply = await stub.Register(
                pb.RegisterRequest(community_id=community_id, activity_id=activity_id),
                metadata=events.auth(user),
            )
            registration: pb.Registration = reply.registration
            return registration

        async def states() -> dict[str, int]:
            listed = await stub.ListRegistrations(
                pb.ListRegistrationsRequest(
                    community_id=community_id, activity_id=activity_id, page_size=100
                ),
                metadata=events.auth("olga"),
            )
            found = {r.user_id: r.state for r in listed.registrations}
            # The capacity holds at every look.
            assert sum(state in (SEATED, HELD) for state in found.values()) <= CAPACITY
            got = await stub.GetActivity(
                pb.GetActivityRequest(community_id=community_id, activity_id=activity_id),
                metadata=events.auth("olga"),
            )
            assert got.activity.seats_taken <= CAPACITY
            return found

        # A member who bought the ticket first is seated at once.
        await billing.publish(_granted(community_id, "early", product_id))
        await billing.caught_up(["billing"], "events-tickets")
        assert (await register("early")).state == SEATED

        # The other buyers arrive together for the last three seats.
        replies = await asyncio.gather(*(register(user) for user in BUYERS))
        held = [r.user_id for r in replies if r.state == HELD]
        assert len(held) == CAPACITY - 1
        assert sorted(r.waitlist_position for r in replies if r.state == WAITLISTED) == list(
            range(1, len(BUYERS) - CAPACITY + 2)
        )
        assert all(r.HasField("hold_until") for r in replies if r.state == HELD)

        # Confirming a held paid seat needs the ticket, not a call.
        with pytest.raises(grpc.aio.AioRpcError) as unpaid:
            await stub.ConfirmSeat(
                pb.ConfirmSeatRequest(community_id=community_id, activity_id=activity_id),
                metadata=events.auth(held[0]),
            )
        assert unpaid.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        # Two pay (one grant delivered twice); the third lets the hold run out.
        paid, lapsed = held[:2], held[2]
        for user in paid:
            fact = _granted(community_id, user, product_id)
            await billing.publish(fact)
            await billing.publish(fact)
        await billing.caught_up(["billing"], "events-tickets")
        now = await states()
        assert [now[user] for user in paid] == [SEATED, SEATED]

        async def lapsed_released() -> bool:
            return (await states())[lapsed] == CANCELLED

        await eventually(lapsed_released, "the unpaid hold expired", seconds=15)
        # The seat went to the first waiting, held for them in turn.
        first_waiting = min(
            (r for r in replies if r.state == WAITLISTED), key=lambda r: r.waitlist_position
        )
        assert (await states())[first_waiting.user_id] in (HELD, CANCELLED)
        # A grant arriving after the hold ended confirms nothing: billing refunds it.
        await billing.publish(_granted(community_id, lapsed, product_id))
        await billing.caught_up(["billing"], "events-tickets")
        assert (await states())[lapsed] == CANCELLED

        async with events.deps.database.read() as session:
            rows = await session.scalars(
                select(outbox.c.payload).where(
                    outbox.c.community_id == community_id,
                    outbox.c.event_type == events_pb.RegistrationCancelled.DESCRIPTOR.full_name,
                )
            )
            cancelled = [events_pb.RegistrationCancelled.FromString(p) for p in rows]
        expired = [c for c in cancelled if c.user_id == lapsed]
        assert [(c.reason, c.ticket_product_id) for c in expired] == [
            (events_pb.REGISTRATION_CANCEL_REASON_HOLD_EXPIRED, product_id)
        ]
        # The late grant found the lapsed member's seat gone: TicketUnused, for billing to
        # pay back. "early" paid before registering: their grant had nothing to confirm
        # either, but no cancelled registration, so theirs is kept for later.
        async with events.deps.database.read() as session:
            rows = await session.scalars(
                select(outbox.c.payload).where(
                    outbox.c.community_id == community_id,
                    outbox.c.event_type == events_pb.TicketUnused.DESCRIPTOR.full_name,
                )
            )
            unused = [events_pb.TicketUnused.FromString(p) for p in rows]
        assert [(u.user_id, u.product_id, u.activity_id) for u in unused] == [
            (lapsed, product_id, activity_id)
        ]

        # Nobody registered yet is the rule for setting a ticket.
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stub.SetActivityTicket(
                pb.SetActivityTicketRequest(
                    community_id=community_id, activity_id=activity_id, product_id=""
                ),
                metadata=events.auth("olga"),
            )
        assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
