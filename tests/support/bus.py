"""Publishing facts as the services do, straight into JetStream with the real envelope, and
waiting until a service's durable consumers have worked through them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import nats
from google.protobuf.message import Message
from nats.js import JetStreamContext

from services.kit.events.connection import servers
from services.kit.events.envelope import Envelope, event_subject, new_event_id
from services.kit.events.streams import StreamLimits, ensure_stream, service_stream, stream_name
from tests.support.waiting import eventually


class Bus:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def publish(self, event: Message, at: datetime | None = None) -> str:
        """Publish `event` on its service's stream (its proto package names the service),
        with `at` as its CloudEvents time; the event id."""
        service = event.DESCRIPTOR.full_name.split(".")[1]
        community_id = event.community_id  # type: ignore[attr-defined]
        envelope = Envelope(
            id=new_event_id(),
            source=f"/studyhall/{service}",
            type=event.DESCRIPTOR.full_name,
            time=at or datetime.now(UTC),
            subject=f"communities/{community_id}",
            community_id=community_id,
            data=event.SerializeToString(),
        )
        subject = event_subject(service, community_id, event.DESCRIPTOR.name)
        await self.js.publish(subject, envelope.data, headers=envelope.headers())
        return envelope.id

    async def caught_up(self, service_stream_names: Sequence[str], prefix: str) -> None:
        """Wait until every durable consumer whose name starts with `prefix` on the streams
        of `service_stream_names` has nothing pending or unacknowledged."""

        async def done() -> bool:
            for service in service_stream_names:
                consumers = await self.js.consumers_info(stream_name(service))
                mine = [c for c in consumers if (c.name or "").startswith(prefix)]
                if not mine or any(c.num_pending or c.num_ack_pending for c in mine):
                    return False
            return True

        await eventually(done, f"{prefix}* consumers caught up", seconds=30)


@asynccontextmanager
async def bus(nats_url: str, services: Sequence[str]) -> AsyncIterator[Bus]:
    """A connection to JetStream with the streams of `services` in place."""
    client = await nats.connect(servers(nats_url), name=f"test-bus-{uuid.uuid4().hex[:6]}")
    js = client.jetstream()
    for service in services:
        await ensure_stream(js, service_stream(service, StreamLimits()))
    try:
        yield Bus(js)
    finally:
        await client.close()
