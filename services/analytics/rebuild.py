"""`studyhall analytics rebuild`: every projection rebuilt from the JetStream history into a
fresh store, then compared with the live one (docs/decisions/0034-rebuild-from-history.md).

1. Record each stream's last sequence: the rebuild reads up to it, and the comparison waits
   until the live consumers have acknowledged up to it.
2. Migrate the fresh store and copy the live tombstones into it first, so an erased member
   stays erased whatever the history says (their facts land on the same pseudonym).
3. For each subscription, read its stream from the first message with an ephemeral pull
   consumer (no acks) and apply the batches exactly as the live consumer does (same facts,
   same inbox, so a message the stream holds twice is applied once).
4. Compare every table row by row and report the differences.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import Table, select

from services.analytics.store.tables import idempotency_keys, inbox, metadata, tombstones
from services.kit.database import Database, utc
from services.kit.events import inbox as inbox_rows
from services.kit.events.connection import connect
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope, EventTypes, PoisonMessage
from services.kit.migrations import migrate

# Bookkeeping, not projections: what a rebuild leaves out of the comparison.
NOT_COMPARED = {inbox.name, idempotency_keys.name}
BATCH = 2000

Say = Callable[[str], None]


@dataclass
class Report:
    sequences: dict[str, int] = field(default_factory=dict)  # stream -> recorded sequence
    events: int = 0
    skipped: int = 0  # poison: parked by the live consumer, skipped here
    seconds: float = 0.0
    differences: dict[str, list[str]] = field(default_factory=dict)  # table -> samples
    compared_rows: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def rebuild(
    *,
    nats_url: str,
    live: Database,
    fresh: Database,
    subscriptions: Sequence[Subscription],
    migrations: Any,
    say: Say = print,
    compare: bool = True,
) -> Report:
    report = Report()
    nc = await connect(nats_url, "analytics-rebuild")
    try:
        js = nc.jetstream()
        for stream in sorted({s.stream for s in subscriptions}):
            report.sequences[stream] = (await js.stream_info(stream)).state.last_seq
        await migrate(fresh, migrations, service="analytics")
        await _copy_tombstones(live, fresh)
        started = time.perf_counter()
        for subscription in subscriptions:
            await _replay(js, fresh, subscription, report, started, say)
        report.seconds = time.perf_counter() - started
        say(
            f"rebuilt {report.events:,} events in {report.seconds:.1f}s "
            f"({report.rate:,.0f} events/s)"
        )
        if compare:
            await _wait_for_live(js, subscriptions, report.sequences, say)
            await _compare(live, fresh, report)
    finally:
        await nc.close()
    return report


async def _copy_tombstones(live: Database, fresh: Database) -> None:
    async with live.read() as session:
        rows = [dict(row._mapping) for row in await session.execute(select(tombstones))]
    if rows:
        async with fresh.write() as session:
            await session.execute(tombstones.insert(), rows)


async def _replay(
    js: JetStreamContext,
    fresh: Database,
    subscription: Subscription,
    report: Report,
    started: float,
    say: Say,
) -> None:
    last = report.sequences[subscription.stream]
    if last == 0:
        return
    types = EventTypes(subscription.event_types)
    pull = await js.pull_subscribe(
        "",
        stream=subscription.stream,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            filter_subjects=subscription.filter_subjects(),
            inactive_threshold=60.0,
            max_waiting=1,
        ),
    )
    shown = time.perf_counter()
    try:
        if not (await pull.consumer_info()).num_pending:
            return
        while True:
            try:
                msgs = await pull.fetch(BATCH, timeout=1.0)
            except (NatsTimeout, TimeoutError):
                break  # nothing left of this subscription's subjects
            batch: list[tuple[Any, Envelope]] = []
            done = False
            for msg in msgs:
                if msg.metadata.sequence.stream > last:
                    done = True
                    break
                try:
                    envelope = Envelope.from_headers(msg.headers, msg.data)
                    batch.append((types.decode(envelope), envelope))
                except PoisonMessage:
                    report.skipped += 1
            await _apply(fresh, subscription, batch)
            report.events += len(batch)
            now = time.perf_counter()
            if now - shown >= 1.0:
                shown = now
                say(
                    f"  {subscription.name}: {report.events:,} events, "
                    f"{report.events / (now - started):,.0f}/s"
                )
            final = msgs[-1].metadata if msgs else None
            if done or final is None or final.sequence.stream >= last or not final.num_pending:
                break
    finally:
        await pull.unsubscribe()


async def _apply(
    fresh: Database, subscription: Subscription, batch: list[tuple[Any, Envelope]]
) -> None:
    if not batch:
        return
    async with fresh.write() as session:
        seen = await inbox_rows.already_processed(
            session, inbox, subscription.name, {envelope.id for _, envelope in batch}
        )
        new: list[tuple[Any, Envelope]] = []
        for event, envelope in batch:
            if envelope.id not in seen:
                seen.add(envelope.id)
                new.append((event, envelope))
        if new:
            await subscription.apply(session, new)
        await inbox_rows.record(session, inbox, subscription.name, [(e.id, e.type) for _, e in new])


async def _wait_for_live(
    js: JetStreamContext,
    subscriptions: Sequence[Subscription],
    sequences: dict[str, int],
    say: Say,
    seconds: float = 120.0,
) -> None:
    """Until each live durable consumer has acknowledged everything up to the recorded
    sequence of its stream (or has nothing pending at all)."""
    deadline = time.monotonic() + seconds
    for subscription in subscriptions:
        while True:
            info = await js.consumer_info(subscription.stream, subscription.name)
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            idle = not info.num_pending and not info.num_ack_pending
            if floor >= sequences[subscription.stream] or idle:
                break
            if time.monotonic() > deadline:
                say(f"  live {subscription.name} is still at {floor}; comparing anyway")
                break
            await asyncio.sleep(0.2)


async def _compare(live: Database, fresh: Database, report: Report) -> None:
    for table in metadata.sorted_tables:
        if table.name in NOT_COMPARED:
            continue
        ours = await _rows(live, table)
        theirs = await _rows(fresh, table)
        report.compared_rows += len(ours)
        if ours != theirs:
            samples = [f"live only: {row}" for row in sorted(ours - theirs, key=repr)[:3]]
            samples += [f"rebuilt only: {row}" for row in sorted(theirs - ours, key=repr)[:3]]
            report.differences[table.name] = samples


async def _rows(database: Database, table: Table) -> set[tuple[Any, ...]]:
    async with database.read() as session:
        rows = await session.execute(select(table))
        return {tuple(_plain(value) for value in row) for row in rows}


def _plain(value: object) -> object:
    return utc(value) if isinstance(value, datetime) else value
