"""The outbox relay: publishes outbox rows to JetStream in batches and marks them published
only after JetStream has acknowledged them.

- Acknowledgements are pipelined: a batch is sent at once and its PubAcks awaited together.
- Failures (NATS down, a timeout) are retried without limit with capped backoff; rows stay
  unpublished until acknowledged, so a crash at any point loses nothing and a restart
  resends what was in flight (JetStream's duplicate window and the consumers' inbox absorb
  the repeat).
- PostgreSQL: rows are claimed with FOR UPDATE SKIP LOCKED, so several relays share the work.
  SQLite: rows are read without holding the write lock (publishing must not block writers)
  and marked afterwards; a second relay on the same file would only cause harmless repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.client import Client
from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind
from sqlalchemy import Row, Table, delete, func, select, update

from services.kit.cancellation import stop_if_cancelled
from services.kit.database import Database, utc
from services.kit.events.connection import NatsAuth, connect
from services.kit.events.envelope import Envelope
from services.kit.events.streams import StreamLimits, ensure_stream, service_stream

log = logging.getLogger(__name__)
tracer = trace.get_tracer("studyhall.relay")


class Relay:
    def __init__(
        self,
        database: Database,
        table: Table,
        *,
        service: str,
        nats_url: str,
        nats_auth: NatsAuth | None = None,
        limits: StreamLimits | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        ack_timeout: float = 10.0,
        max_backoff: float = 5.0,
        retention: timedelta = timedelta(days=7),
        lanes: int = 2,
    ) -> None:
        self.database = database
        self.table = table
        self.service = service
        self.source = f"/studyhall/{service}"
        self.nats_url = nats_url
        self.nats_auth = nats_auth
        self.limits = limits or StreamLimits()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.max_backoff = max_backoff
        self.retention = retention
        self.lanes = lanes
        self._wake = asyncio.Event()
        self._backlog = 0
        self._oldest_age = 0.0
        self._nc: Client | None = None
        meter = metrics.get_meter("studyhall.outbox")
        self._published = meter.create_counter(
            "studyhall.outbox.published",
            description="Events published and acknowledged by JetStream.",
        )
        self._failures = meter.create_counter(
            "studyhall.outbox.publish_failures",
            description="Publish attempts that failed and will be retried.",
        )
        meter.create_observable_gauge(
            "studyhall.outbox.backlog",
            callbacks=[self._observe_backlog],
            description="Outbox rows not yet published.",
        )
        meter.create_observable_gauge(
            "studyhall.outbox.oldest_age",
            unit="s",
            callbacks=[self._observe_age],
            description="Age of the oldest unpublished outbox row.",
        )

    @property
    def connected(self) -> bool:
        """Holding a NATS connection now (false before the first one and while reconnecting)."""
        return self._nc is not None and self._nc.is_connected

    def notify(self) -> None:
        """Wake the relay now: a transaction has just committed new rows."""
        self._wake.set()

    async def run(self) -> None:
        # Series exist from the start at 0, so the first failure is an increase that alert
        # rules see (a series born at 1 shows no increase).
        self._published.add(0)
        self._failures.add(0)
        self._nc = await connect(self.nats_url, f"{self.service}-relay", auth=self.nats_auth)
        js = self._nc.jetstream(timeout=self.ack_timeout)
        delay = 0.1
        while True:
            try:
                await ensure_stream(js, service_stream(self.service, self.limits))
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("%s relay cannot set up its stream yet: %s", self.service, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        # On PostgreSQL, SKIP LOCKED lets lanes claim disjoint batches, so one batch is
        # published while another waits for its PubAcks; SQLite has no row locks, so one lane.
        lanes = 1 if self.database.is_sqlite else self.lanes
        try:
            await asyncio.gather(*(self._loop(js, housekeeping=lane == 0) for lane in range(lanes)))
        finally:
            await self._nc.close()

    async def _loop(self, js: Any, *, housekeeping: bool = True) -> None:
        delay = 0.1
        last_housekeeping = 0.0
        while True:
            try:
                if housekeeping and time.monotonic() - last_housekeeping > 5:
                    await self._housekeeping()
                    last_housekeeping = time.monotonic()
                published = await self.relay_once(js)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as error:
                stop_if_cancelled()
                self._failures.add(1)
                log.warning("%s relay failed, retrying in %.1fs: %s", self.service, delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            if published < self.batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

    async def relay_once(self, js: Any) -> int:
        """Publish one batch; returns how many rows were published."""
        if self.database.is_sqlite:
            async with self.database.read() as session:
                rows = await self._pending(session, lock=False)
            if not rows:
                return 0
            done = await self._publish(js, rows)
            if done:
                async with self.database.write() as session:
                    await self._mark(session, done)
            return len(done)
        async with self.database.write() as session:
            rows = await self._pending(session, lock=True)
            if not rows:
                return 0
            done = await self._publish(js, rows)
            await self._mark(session, done)
        return len(done)

    async def _pending(self, session: Any, *, lock: bool) -> Sequence[Row[Any]]:
        query = (
            select(self.table)
            .where(self.table.c.published_at.is_(None))
            .order_by(self.table.c.seq)
            .limit(self.batch_size)
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        rows: Sequence[Row[Any]] = (await session.execute(query)).all()
        return rows

    async def _publish(self, js: Any, rows: Sequence[Row[Any]]) -> list[int]:
        spans = []
        futures = []
        for row in rows:
            parent = propagate.extract(
                {"traceparent": row.traceparent, "tracestate": row.tracestate}
            )
            span = tracer.start_span(
                f"publish {row.event_type.rsplit('.', 1)[-1]}",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    # Current messaging conventions: the type `send` (`publish` is
                    # deprecated), the system's own name of the operation beside it.
                    "messaging.system": "nats",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "publish",
                    "messaging.destination.name": row.nats_subject,
                    "messaging.message.id": row.event_id,
                },
            )
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            envelope = Envelope(
                id=row.event_id,
                source=self.source,
                type=row.event_type,
                time=utc(row.created_at),
                subject=row.ce_subject,
                community_id=row.community_id,
                data=row.payload,
                traceparent=carrier.get("traceparent", ""),
                tracestate=carrier.get("tracestate", ""),
            )
            spans.append(span)
            try:
                futures.append(
                    await js.publish_async(
                        row.nats_subject, row.payload, headers=envelope.headers()
                    )
                )
            except BaseException:
                # The rows already sent may still be acknowledged; their futures must not
                # hold publish slots forever. Nothing is marked, so all are sent again.
                for future in futures:
                    future.cancel()
                for started in spans:
                    started.end()
                raise
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), timeout=self.ack_timeout
            )
        except TimeoutError:
            for future in futures:
                future.cancel()
            for span in spans:
                span.set_status(trace.Status(trace.StatusCode.ERROR, "no PubAck"))
                span.end()
            raise TimeoutError(f"no PubAck within {self.ack_timeout}s") from None
        done: list[int] = []
        first_error: BaseException | None = None
        for row, span, result in zip(rows, spans, results, strict=True):
            if isinstance(result, BaseException):
                first_error = first_error or result
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(result).__name__))
            else:
                done.append(row.seq)
            span.end()
        self._published.add(len(done))
        if first_error is not None and not done:
            raise first_error
        return done

    async def _mark(self, session: Any, seqs: list[int]) -> None:
        await session.execute(
            update(self.table)
            .where(self.table.c.seq.in_(seqs), self.table.c.published_at.is_(None))
            .values(published_at=datetime.now(UTC))
        )

    async def _housekeeping(self) -> None:
        async with self.database.read() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(self.table.c.created_at)).where(
                        self.table.c.published_at.is_(None)
                    )
                )
            ).one()
        self._backlog = int(count)
        self._oldest_age = (datetime.now(UTC) - utc(oldest)).total_seconds() if oldest else 0.0
        cutoff = datetime.now(UTC) - self.retention
        async with self.database.write() as session:
            await session.execute(
                delete(self.table).where(
                    self.table.c.published_at.is_not(None), self.table.c.published_at < cutoff
                )
            )

    def _observe_backlog(self, _options: CallbackOptions) -> list[Observation]:
        return [Observation(self._backlog, {"service": self.service})]

    def _observe_age(self, _options: CallbackOptions) -> list[Observation]:
        return [Observation(self._oldest_age, {"service": self.service})]
