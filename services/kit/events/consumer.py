"""Durable JetStream consumers whose effects are applied exactly once.

A pulled batch is handled in one database transaction: for each event not yet in the inbox,
the handler's effect and the inbox row are written together, then the whole batch is acked.
A crash before the commit redelivers the batch; a crash after it redelivers events whose ids
the inbox already holds, so nothing is applied twice.

Failures are sorted (docs/decisions/0004-failure-policy.md):
- poison (no CloudEvents headers, unknown type, undecodable body): parked in the dead-letter
  stream at once with the reason, then acked, so it never blocks the consumer;
- transient (database or broker unreachable): the batch is nak'ed with capped backoff and
  retried without limit, counted;
- a handler that raises on a valid event: the batch is retried one event at a time to find
  it; that event is retried `max_handler_attempts` times, then parked with an alert.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind
from sqlalchemy import Table
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.cancellation import stop_if_cancelled
from services.kit.database import Database, connection_lost
from services.kit.events import deadletter, inbox
from services.kit.events.connection import NatsAuth, connect
from services.kit.events.envelope import (
    Envelope,
    EventTypes,
    PoisonMessage,
    decode,
    event_filter,
    stream_subjects,
)
from services.kit.events.streams import StreamLimits, deadletter_stream, ensure_stream, stream_name

log = logging.getLogger(__name__)
tracer = trace.get_tracer("studyhall.consumer")

# How long a fetch waits for a batch to fill when nothing is waiting (see _next_batch).
BATCH_WAIT = 0.02

# Applies a batch of new events (never seen by this consumer) inside the caller's transaction.
Apply = Callable[[AsyncSession, list[tuple[Any, Envelope]]], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """What one durable consumer reads and what it does with it.

    `apply` receives a whole batch: a projection writes it with a statement or two instead
    of a few per event, which is where a consumer's time goes.
    """

    name: str  # durable name, e.g. "analytics-members"; shared by every replica
    source_service: str  # the producing service whose stream is read
    event_types: tuple[type[Message], ...]
    apply: Apply
    # Events fetched and applied in one transaction at most; None: the consumer's default.
    # A projection whose effects merge in memory writes about as many statements for a
    # big batch as for a small one, so under a backlog a bigger batch keeps up better.
    batch_size: int | None = None

    @property
    def stream(self) -> str:
        return stream_name(self.source_service)

    def filter_subjects(self) -> list[str]:
        return [
            event_filter(self.source_service, message.DESCRIPTOR.name)
            for message in self.event_types
        ]

    def server_filter(self) -> list[str]:
        """What the durable consumer asks nats-server for: the one type's subjects, or the
        whole stream when it reads several (the consumer then picks its types by subject).
        nats-server 2.15 delivers a stream of many subjects (one per community and type)
        about fifteen times slower through a consumer with several filters than through
        one, which capped a projection at a few hundred events a second."""
        filters = self.filter_subjects()
        return filters if len(filters) == 1 else [stream_subjects(self.source_service)]

    def names(self) -> frozenset[str]:
        """The last subject token of each type read: what the consumer keeps."""
        return frozenset(message.DESCRIPTOR.name for message in self.event_types)


@dataclass
class _Item:
    msg: Msg
    envelope: Envelope
    event: Message


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    redeliveries: int = 0
    dead_letters: int = 0
    transient_failures: int = 0
    handler_failures: int = 0
    lag: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class DatabaseUnavailable(Exception):
    """No connection to the consumer's own database: never the event's fault, so the batch
    waits for the database instead of being parked (a database not created yet, a dropped
    one, a refused login)."""


TRANSIENT = (
    OperationalError,
    InterfaceError,
    OSError,
    TimeoutError,
    NatsError,
    DatabaseUnavailable,
)


def is_transient(error: BaseException) -> bool:
    return connection_lost(error) or isinstance(error, TRANSIENT)


class Consumer:
    def __init__(
        self,
        database: Database,
        inbox_table: Table,
        subscription: Subscription,
        *,
        nats_url: str,
        nats_auth: NatsAuth | None = None,
        limits: StreamLimits | None = None,
        batch_size: int = 256,
        fetch_timeout: float = 1.0,
        ack_wait: float = 10.0,
        max_handler_attempts: int = 5,
        max_backoff: float = 5.0,
    ) -> None:
        self.database = database
        self.inbox = inbox_table
        self.subscription = subscription
        self.nats_url = nats_url
        self.nats_auth = nats_auth
        self.limits = limits or StreamLimits()
        self.batch_size = subscription.batch_size or batch_size
        self.fetch_timeout = fetch_timeout
        self.ack_wait = ack_wait
        self.max_handler_attempts = max_handler_attempts
        self.max_backoff = max_backoff
        self.types = EventTypes(subscription.event_types)
        self._names = subscription.names()
        self.stats = ConsumerStats()
        self._backoff = 0.1
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        meter = metrics.get_meter("studyhall.consumer")
        labels = {"consumer": subscription.name}
        self._labels = labels
        self._processed = meter.create_counter(
            "studyhall.consumer.processed", description="Events whose effect was committed."
        )
        self._redelivered = meter.create_counter(
            "studyhall.consumer.redeliveries", description="Messages delivered more than once."
        )
        self._dead = meter.create_counter(
            "studyhall.consumer.dead_letters",
            description="Messages parked in the dead-letter stream.",
        )
        self._transient = meter.create_counter(
            "studyhall.consumer.transient_failures",
            description="Batches retried because a dependency was unavailable.",
        )
        self._handler_failed = meter.create_counter(
            "studyhall.consumer.handler_failures",
            description="Valid events whose handler raised; retried, then parked.",
        )
        _register_lag(self)

    @property
    def connected(self) -> bool:
        """Holding a NATS connection now (false before the first one and while reconnecting)."""
        return self._nc is not None and self._nc.is_connected

    async def run(self) -> None:
        # Series exist from the start at 0, so the first dead letter or failure is an
        # increase that alert rules see (a series born at 1 shows no increase).
        for counter in (
            self._processed,
            self._redelivered,
            self._dead,
            self._transient,
            self._handler_failed,
        ):
            counter.add(0, self._labels)
        self._nc = await connect(
            self.nats_url, f"consumer-{self.subscription.name}", auth=self.nats_auth
        )
        self._js = self._nc.jetstream()
        try:
            while True:
                try:
                    await self._consume(self._js)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    stop_if_cancelled()
                    self.stats.transient_failures += 1
                    self._transient.add(1, self._labels)
                    log.warning(
                        "consumer %s interrupted, resuming in %.1fs: %r",
                        self.subscription.name,
                        self._backoff,
                        error,
                    )
                    await asyncio.sleep(self._backoff)
                    # Reset by the next batch handled: only repeated failures wait longer.
                    self._backoff = min(self._backoff * 2, self.max_backoff)
        finally:
            await self._nc.close()

    async def _consume(self, js: JetStreamContext) -> None:
        await ensure_stream(js, deadletter_stream(self.limits))
        config = ConsumerConfig(
            durable_name=self.subscription.name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            # Retrying is the consumer's decision (see the module docstring), not the server's.
            max_deliver=-1,
            max_ack_pending=self.batch_size * 4,
            filter_subjects=self.subscription.server_filter(),
        )
        await js.add_consumer(self.subscription.stream, config)
        pull = await js.pull_subscribe_bind(
            durable=self.subscription.name, stream=self.subscription.stream
        )
        try:
            while True:
                batch = await self._next_batch(pull)
                if not batch:
                    continue
                await self.handle_batch(js, batch)
                self._backoff = 0.1
        finally:
            await pull.unsubscribe()

    async def _next_batch(self, pull: JetStreamContext.PullSubscription) -> list[Msg]:
        """What is waiting, at once; on an idle stream, the first message as it arrives.

        nats-py's fetch(n) returns at once what the stream holds, but when it holds nothing
        its waiting request returns only with n messages or at the timeout: a consumer of a
        quiet stream would sit on a fresh event for up to `fetch_timeout`. So a short wait
        for a batch, then a wait for one message (the next call takes what came with it)."""
        try:
            return await pull.fetch(self.batch_size, timeout=BATCH_WAIT)
        except (NatsTimeout, TimeoutError):
            # Nothing waiting: nats-py raises either, depending on where it waited.
            pass
        try:
            return await pull.fetch(1, timeout=self.fetch_timeout)
        except (NatsTimeout, TimeoutError):
            return []

    async def handle_batch(self, js: JetStreamContext, batch: list[Msg]) -> None:
        items: list[_Item] = []
        others: list[Msg] = []  # types of the stream this consumer does not read
        for msg in batch:
            metadata = msg.metadata
            self.stats.lag = metadata.num_pending
            if msg.subject.rsplit(".", 1)[-1] not in self._names:
                others.append(msg)
                continue
            if metadata.num_delivered > 1:
                self.stats.redeliveries += 1
                self._redelivered.add(1, self._labels)
            try:
                items.append(self._decode(msg))
            except PoisonMessage as poison:
                await self._park(js, msg, poison.reason)
        # Acked at once: what a server-side filter would never have delivered.
        await _ack_all(others)
        if not items:
            return
        try:
            await self._apply(items)
        except Exception as error:
            stop_if_cancelled()
            if is_transient(error):
                await self._retry_later(items, error)
                return
            # One event of the batch is at fault; find it by handling them one by one.
            for item in items:
                await self._handle_alone(js, item)
            return
        await _ack_all(item.msg for item in items)

    def _decode(self, msg: Msg) -> _Item:
        # The one decoder the consumer kit's subscribers use too (clients/python).
        envelope, event = decode(self.types, msg.headers, msg.data, msg.subject)
        return _Item(msg, envelope, event)

    async def _apply(self, items: list[_Item]) -> None:
        name = self.subscription.name
        async with self.database.write() as session:
            try:
                await session.connection()
            except Exception as error:
                raise DatabaseUnavailable(str(error)) from error
            # The batch's first copy of each event the inbox has not seen; a stream may hold
            # a message twice, and a redelivery may meet what another replica applied.
            unique = {item.envelope.id: item for item in reversed(items)}
            claimed = await inbox.claim(
                session,
                self.inbox,
                name,
                [(event_id, item.envelope.type) for event_id, item in unique.items()],
            )
            fresh = [
                item
                for item in items
                if unique[item.envelope.id] is item and item.envelope.id in claimed
            ]
            self.stats.duplicates += len(items) - len(fresh)
            # One span per event, each a child of its publish span (decision 0002), all
            # covering the one call that applies the batch.
            spans = [self._span(item) for item in fresh]
            try:
                if fresh:
                    await self.subscription.apply(
                        session, [(item.event, item.envelope) for item in fresh]
                    )
            except BaseException as error:
                for span in spans:
                    span.record_exception(error)
                    span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
                raise
            finally:
                for span in spans:
                    span.end()
        self.stats.processed += len(fresh)
        for item in fresh:
            event_type = item.envelope.type
            self.stats.counts[event_type] = self.stats.counts.get(event_type, 0) + 1
        self._processed.add(len(fresh), self._labels)

    def _span(self, item: _Item) -> trace.Span:
        parent = propagate.extract(
            {"traceparent": item.envelope.traceparent, "tracestate": item.envelope.tracestate}
        )
        return tracer.start_span(
            f"process {item.event.DESCRIPTOR.name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": item.msg.subject,
                "messaging.consumer.group.name": self.subscription.name,
                "messaging.message.id": item.envelope.id,
            },
        )

    async def _handle_alone(self, js: JetStreamContext, item: _Item) -> None:
        try:
            await self._apply([item])
        except Exception as error:
            stop_if_cancelled()
            if is_transient(error):
                await self._retry_later([item], error)
                return
            self.stats.handler_failures += 1
            self._handler_failed.add(1, self._labels)
            attempts = item.msg.metadata.num_delivered
            if attempts >= self.max_handler_attempts:
                log.error(
                    "consumer %s parks %s after %d failed attempts: %r",
                    self.subscription.name,
                    item.envelope.id,
                    attempts,
                    error,
                )
                await self._park(js, item.msg, f"handler failed {attempts} times: {error!r}")
            else:
                await item.msg.nak(delay=min(0.2 * 2**attempts, self.max_backoff))
            return
        await item.msg.ack()

    async def _retry_later(self, items: list[_Item], error: BaseException) -> None:
        self.stats.transient_failures += 1
        self._transient.add(1, self._labels)
        attempts = max(item.msg.metadata.num_delivered for item in items)
        delay = min(0.1 * 2**attempts, self.max_backoff)
        log.warning("consumer %s will retry in %.1fs: %s", self.subscription.name, delay, error)
        for item in items:
            await item.msg.nak(delay=delay)

    async def _park(self, js: JetStreamContext, msg: Msg, reason: str) -> None:
        await deadletter.park(js, msg, consumer=self.subscription.name, reason=reason)
        await msg.ack()
        self.stats.dead_letters += 1
        self._dead.add(1, self._labels)
        log.error(
            "consumer %s parked a dead letter: %s",
            self.subscription.name,
            reason,
            extra={"nats_subject": msg.subject},
        )


# One gauge for every consumer of the process: a second gauge of the same name would be
# dropped by the SDK, and with it the lag of every consumer but the first.
_CONSUMERS: weakref.WeakSet[Consumer] = weakref.WeakSet()
_LAG_GAUGE: list[object] = []


def _register_lag(consumer: Consumer) -> None:
    _CONSUMERS.add(consumer)
    if not _LAG_GAUGE:
        _LAG_GAUGE.append(
            metrics.get_meter("studyhall.consumer").create_observable_gauge(
                "studyhall.consumer.lag",
                callbacks=[_observe_lag],
                description="Messages in the stream not yet delivered to the consumer.",
            )
        )


def _observe_lag(_options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(consumer.stats.lag, consumer._labels) for consumer in list(_CONSUMERS)]


async def _ack_all(msgs: Iterable[Msg]) -> None:
    for msg in msgs:
        await msg.ack()
