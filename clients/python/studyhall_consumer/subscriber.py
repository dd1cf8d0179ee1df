"""faststream batch pull subscribers for Studyhall's events, with typed handlers.

    handlers = Handlers()

    @handlers.on(MemberJoined)
    async def joined(event: Event[MemberJoined]) -> None:
        print(event.id, event.message.user_id)

    broker = NatsBroker(url)
    subscribe(broker, handlers, durable="my-team-welcome")

One durable JetStream pull consumer per stream the handled types live in, its
`filter_subjects` the types' subjects from the catalogue, so no other type ever reaches it.
Each fetched batch is decoded by the one Studyhall decoder (`cloudevents.decode`) and each
event handed to the handler of its type; each message is acked on its own once its handler
returned. Delivery is at least once: a handler sees an event again after a crash or a failure,
so it must be idempotent by `event.id` (the CloudEvents `ce-id`; see the kit's README).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from faststream import Context
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from faststream.nats import ConsumerConfig, DeliverPolicy, JStream, NatsBroker, PullSub
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js.api import AckPolicy as JsAckPolicy
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from studyhall_consumer.catalogue import Catalogue
from studyhall_consumer.cloudevents import Envelope, EventTypes, PoisonMessage, decode
from studyhall_consumer.fetch_timeouts import raise_nats_timeouts_from_fetch

log = logging.getLogger("studyhall_consumer")
tracer = trace.get_tracer("studyhall_consumer")

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Event(Generic[M]):
    """One decoded event: its CloudEvents envelope and its typed protobuf message."""

    envelope: Envelope
    message: M
    subject: str
    # 1 on the first delivery; more when JetStream delivers it again.
    deliveries: int = 1

    @property
    def id(self) -> str:
        """The CloudEvents `ce-id`: the same on every redelivery, the idempotency key."""
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def community_id(self) -> str:
        return self.envelope.community_id

    @property
    def time(self) -> datetime:
        return self.envelope.time


Handler = Callable[[Event[M]], Awaitable[None]]
# What to do with a message the kit stops delivering: the raw message and the reason.
Failure = Callable[[Msg, str], Awaitable[None]]


class Handlers:
    """The typed handlers of one consumer, one per event type."""

    def __init__(self) -> None:
        self._by_type: dict[str, tuple[type[Message], Handler[Any]]] = {}

    def on(self, message_class: type[M]) -> Callable[[Handler[M]], Handler[M]]:
        def register(handler: Handler[M]) -> Handler[M]:
            name = message_class.DESCRIPTOR.full_name
            if name in self._by_type:
                raise ValueError(f"{name} already has a handler")
            self._by_type[name] = (message_class, handler)
            return handler

        return register

    def message_classes(self) -> list[type[Message]]:
        return [message_class for message_class, _ in self._by_type.values()]

    def handler(self, event_type: str) -> Handler[Any]:
        return self._by_type[event_type][1]


@dataclass(frozen=True)
class RetryPolicy:
    """A handler that raises has its event delivered again after `delay(deliveries)`; after
    `max_deliveries` the kit gives up on it (`on_give_up`, then the message is terminated).
    The delays are those of the services' own consumers (decision 0004)."""

    max_deliveries: int = 5
    base_delay: float = 0.1
    max_delay: float = 5.0

    def delay(self, deliveries: int) -> float:
        return float(min(self.base_delay * 2**deliveries, self.max_delay))


async def _log_only(msg: Msg, reason: str) -> None:
    return None


@dataclass
class BatchConsumer:
    """Applies one fetched batch: decode, dispatch, ack/nak/term each message."""

    handlers: Handlers
    durable: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_poison: Failure = _log_only
    on_give_up: Failure = _log_only
    # The global tracer provider's unless given (tests hand in their own).
    tracer: trace.Tracer = field(default_factory=lambda: tracer)

    def __post_init__(self) -> None:
        self.types = EventTypes(self.handlers.message_classes())

    async def __call__(self, batch: Sequence[Msg]) -> None:
        for msg in batch:
            await self.handle(msg)

    async def handle(self, msg: Msg) -> None:
        deliveries = _deliveries(msg)
        try:
            envelope, message = decode(self.types, msg.headers, msg.data, msg.subject)
        except PoisonMessage as poison:
            # No retry can fix it; it must not block the events behind it.
            log.error("poison message on %s for %s: %s", msg.subject, self.durable, poison.reason)
            await self.on_poison(msg, poison.reason)
            await msg.term()
            return
        event: Event[Message] = Event(envelope, message, msg.subject, deliveries)
        # The handler's span continues the producer's trace (`traceparent`), as the services'
        # consumers do; without an OpenTelemetry SDK configured it costs nothing.
        parent = propagate.extract(
            {"traceparent": envelope.traceparent, "tracestate": envelope.tracestate}
        )
        with self.tracer.start_as_current_span(
            f"process {message.DESCRIPTOR.name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": msg.subject,
                "messaging.consumer.group.name": self.durable,
                "messaging.message.id": envelope.id,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await self.handlers.handler(envelope.type)(event)
            except Exception as error:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                await self._failed(msg, envelope, deliveries, error)
                return
        await msg.ack()

    async def _failed(
        self, msg: Msg, envelope: Envelope, deliveries: int, error: Exception
    ) -> None:
        reason = f"{type(error).__name__}: {error}"
        if deliveries >= self.retry.max_deliveries:
            log.error(
                "%s gave up on event %s (%s) after %d deliveries: %s",
                self.durable,
                envelope.id,
                envelope.type,
                deliveries,
                reason,
            )
            await self.on_give_up(msg, reason)
            await msg.term()
            return
        log.warning(
            "%s retries event %s (%s, delivery %d): %s",
            self.durable,
            envelope.id,
            envelope.type,
            deliveries,
            reason,
        )
        await msg.nak(delay=self.retry.delay(deliveries))


def _deliveries(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # not a JetStream message (faststream's TestNatsBroker)
        return 1


def subscribe(
    broker: NatsBroker,
    handlers: Handlers,
    *,
    durable: str,
    catalogue: Catalogue | None = None,
    batch_size: int = 100,
    max_wait: float = 1.0,
    ack_wait: float = 30.0,
    retry: RetryPolicy | None = None,
    on_poison: Failure = _log_only,
    on_give_up: Failure = _log_only,
) -> list[BatchConsumer]:
    """Register the handlers on `broker`: one batch pull subscriber per stream.

    `durable` names the JetStream consumer (one per stream, shared by every replica of the
    consumer, which then split the work). A batch is handed over when `batch_size` events
    arrived or `max_wait` seconds passed. Handler failures are retried per `retry`; a message
    still unacknowledged after `ack_wait` seconds (a crashed replica) is delivered again.
    """
    raise_nats_timeouts_from_fetch()
    catalogue = catalogue or Catalogue.load()
    by_stream: dict[str, list[str]] = {}
    for message_class in handlers.message_classes():
        channel = catalogue.channel(message_class)
        by_stream.setdefault(channel.stream, []).append(channel.subject())
    consumers = []
    for stream, subjects in sorted(by_stream.items()):
        consumer = BatchConsumer(
            handlers,
            durable,
            retry or RetryPolicy(),
            on_poison=on_poison,
            on_give_up=on_give_up,
        )
        config = ConsumerConfig(
            durable_name=durable,
            filter_subjects=sorted(subjects),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=JsAckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            # The consumer decides when to give up, not the server (decision 0004).
            max_deliver=-1,
            max_ack_pending=batch_size * 4,
        )
        subscriber = broker.subscriber(
            stream=JStream(stream, declare=False),  # the services own their streams
            durable=durable,
            config=config,
            pull_sub=PullSub(batch_size, timeout=max_wait, batch=True),
            ack_policy=AckPolicy.MANUAL,  # each message is acked by the kit on its own
            title=f"{durable}:{stream}",
            description=f"Studyhall events of {stream} for {durable}",
        )
        subscriber(_batch_handler(consumer))
        consumers.append(consumer)
    return consumers


def _batch_handler(
    consumer: BatchConsumer,
) -> Callable[..., Awaitable[None]]:
    async def handle(
        message: Annotated[StreamMessage[list[Msg]], Context("message")],
    ) -> None:
        await consumer(message.raw_message)

    return handle
