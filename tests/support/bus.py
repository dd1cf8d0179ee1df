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


def service_of(event: Message) -> str:
    """The service that publishes `event`: its proto package names it."""
    return event.DESCRIPTOR.full_name.split(".")[1]


def envelope_of(event: Message, at: datetime | None = None) -> Envelope:
    """`event` in the envelope its service gives it: a new event id, `at` (or now) as its
    CloudEvents time."""
    community_id = event.community_id  # type: ignore[attr-defined]
    return Envelope(
        id=new_event_id(),
        source=f"/studyhall/{service_of(event)}",
        type=event.DESCRIPTOR.full_name,
        time=at or datetime.now(UTC),
        subject=f"communities/{community_id}",
        community_id=community_id,
        data=event.SerializeToString(),
    )


class Bus:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def publish(self, event: Message, at: datetime | None = None) -> str:
        """Publish `event` on its service's stream with `at` as its CloudEvents time; the
        event id."""
        envelope = envelope_of(event, at)
        await self._send(event, envelope, envelope.headers())
        return envelope.id

    async def publish_again(self, event: Message, envelope: Envelope) -> None:
        """Publish `envelope` (of `event`) once more under a Nats-Msg-Id of its own, so the
        stream keeps both copies: a relay that published twice, a replayed dead letter."""
        await self._send(event, envelope, {**envelope.headers(), "Nats-Msg-Id": new_event_id()})

    async def _send(self, event: Message, envelope: Envelope, headers: dict[str, str]) -> None:
        subject = event_subject(service_of(event), envelope.community_id, event.DESCRIPTOR.name)
        await self.js.publish(subject, envelope.data, headers=headers)

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
