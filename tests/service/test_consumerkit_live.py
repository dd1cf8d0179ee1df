"""The consumer kit on a live Studyhall stream: the members service runs in-process with its
relay, a member joins and leaves, and a faststream subscriber built with the kit receives the
decoded MemberJoined and MemberLeft from JetStream (real nats-server), as another team's
consumer would: a handler that fails gets the event again, and every message is acked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from faststream.nats import NatsBroker

from services.kit.events.connection import servers
from services.kit.events.envelope import EventTypes, decode
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.members.v1 import members_events_pb2 as events
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from studyhall_consumer.subscriber import Event, Handlers, subscribe
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service


@pytest.fixture
async def members(
    tmp_path: Path, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        MEMBERS,
        MembersSettings,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'members.db'}",
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as running:
        yield running


async def _stream_exists(nats_url: str, name: str) -> None:
    connection = await nats.connect(servers(nats_url))
    try:
        jetstream = connection.jetstream()
        for _ in range(200):
            if name in [s.config.name for s in await jetstream.streams_info()]:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} was never created")
    finally:
        await connection.close()


async def _all_acked(nats_url: str, durable: str) -> None:
    """Each message is acked once its handler returned: nothing waits to be redelivered."""
    connection = await nats.connect(servers(nats_url))
    try:
        jetstream = connection.jetstream()
        for _ in range(100):
            info = await jetstream.consumer_info("STUDYHALL_MEMBERS", durable)
            if info.num_ack_pending == 0 and info.num_pending == 0:
                assert info.config.filter_subjects == [
                    "studyhall.members.*.MemberJoined",
                    "studyhall.members.*.MemberLeft",
                ]
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{durable} left messages unacknowledged: {info}")
    finally:
        await connection.close()


async def _decoded_by_the_services(nats_url: str, community_id: str) -> dict[str, object]:
    types = EventTypes([events.MemberJoined, events.MemberLeft])
    connection = await nats.connect(servers(nats_url))
    found: dict[str, object] = {}
    try:
        jetstream = connection.jetstream()
        for name in ("MemberJoined", "MemberLeft"):
            subscription = await jetstream.subscribe(
                f"studyhall.members.{community_id}.{name}", ordered_consumer=True
            )
            wanted = 2 if name == "MemberJoined" else 1
            for _ in range(wanted):
                msg = await subscription.next_msg(timeout=10)
                envelope, event = decode(types, msg.headers, msg.data, msg.subject)
                found[envelope.id] = (envelope.type, event.SerializeToString(deterministic=True))
            await subscription.unsubscribe()
    finally:
        await connection.close()
    return found


async def test_the_kit_consumes_membership_facts_from_a_live_stream(
    members: RunningService, nats_url: str
) -> None:
    stub = members_grpc.MembersServiceStub(members.channel)
    created = await stub.CreateCommunity(
        members_pb.CreateCommunityRequest(name=f"Open {uuid.uuid4().hex[:6]}", topic="reading"),
        metadata=members.auth("owner"),
    )
    community_id = created.community.id
    await _stream_exists(nats_url, "STUDYHALL_MEMBERS")

    received: asyncio.Queue[Event[events.MemberJoined] | Event[events.MemberLeft]]
    received = asyncio.Queue()
    handlers = Handlers()

    @handlers.on(events.MemberJoined)
    async def joined(event: Event[events.MemberJoined]) -> None:
        await received.put(event)

    failures: list[str] = []

    @handlers.on(events.MemberLeft)
    async def left(event: Event[events.MemberLeft]) -> None:
        if event.deliveries == 1 and event.community_id == community_id:
            # The handler's own dependency is down the first time: the kit naks the event
            # and JetStream delivers it again after the backoff.
            failures.append(event.id)
            raise ConnectionError("downstream unavailable")
        await received.put(event)

    durable = f"kit-live-{uuid.uuid4().hex[:8]}"
    broker = NatsBroker(servers(nats_url), logger=None)
    subscribe(broker, handlers, durable=durable, max_wait=0.1)
    await broker.start()
    try:
        await stub.JoinCommunity(
            members_pb.JoinCommunityRequest(community_id=community_id),
            metadata=members.auth("lin"),
        )
        await stub.LeaveCommunity(
            members_pb.LeaveCommunityRequest(community_id=community_id),
            metadata=members.auth("lin"),
        )
        facts: list[Event[events.MemberJoined] | Event[events.MemberLeft]] = []
        while len(facts) < 3:  # the owner's join, lin's join, lin's leave
            event = await asyncio.wait_for(received.get(), timeout=15)
            if event.community_id == community_id:
                facts.append(event)
        await _all_acked(nats_url, durable)
    finally:
        await broker.stop()

    by_user = [(e.type, e.message.user_id, e.message.version, e.deliveries) for e in facts]
    assert sorted(by_user) == [
        ("studyhall.members.v1.MemberJoined", "lin", 1, 1),
        ("studyhall.members.v1.MemberJoined", "owner", 1, 1),
        ("studyhall.members.v1.MemberLeft", "lin", 2, 2),  # the retry after the failure
    ]
    assert failures == [e.id for e in facts if e.type.endswith("MemberLeft")]
    for event in facts:
        assert event.message.community_id == community_id
        assert str(uuid.UUID(event.id)) == event.id
        assert event.subject == f"studyhall.members.{community_id}.{event.message.DESCRIPTOR.name}"

    # The same messages, read from the stream with nats-py and decoded by the services' own
    # consumer path, are the same events.
    assert await _decoded_by_the_services(nats_url, community_id) == {
        event.id: (event.type, event.message.SerializeToString(deterministic=True))
        for event in facts
    }
