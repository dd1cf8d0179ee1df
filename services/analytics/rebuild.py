"""`studyhall analytics rebuild`: every projection rebuilt from the JetStream history into a
fresh store, then compared with the live one (docs/decisions/0034-rebuild-from-history.md).

1. Record each stream's last sequence: the rebuild reads up to it, and the comparison waits
   until the live consumers have acknowledged up to it.
2. Migrate the fresh store and copy the live tombstones into it first, so an erased member
   stays erased whatever the history says (their facts land on the same pseudonym).
3. Read each stream once from the first message with an ephemeral pull consumer (no acks,
   batches asked for by hand: `Pull`), handing every event to each subscription that reads
   its type, while the next batch is fetched. A message the stream holds twice is applied
   once: event ids are remembered in memory (the inbox is bookkeeping the comparison
   leaves out). Analytics' own facts go through the same fact functions as live, and
   their effects merge in memory by the rollups' own rules (store/fresh.py); the other
   subscriptions (roles, erasure) apply their batches as live.
4. Write the merged rollups once, one bulk insert per table: the store is fresh and nobody
   else writes it, so nothing needs the live consumers' upserts.
5. Compare every table row by row and report the differences.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import Table, select

from services.analytics.consumers import SUBSCRIPTIONS as FACT_SUBSCRIPTIONS
from services.analytics.facts import effects_of
from services.analytics.store import fresh as fresh_store
from services.analytics.store.fresh import Totals
from services.analytics.store.tables import (
    churn_risks,
    idempotency_keys,
    inbox,
    metadata,
    outbox,
    scheduled_jobs,
    survey_answers,
    survey_recipients,
    surveys,
    tombstones,
)
from services.kit.database import Database, utc
from services.kit.events.connection import NatsAuth, connect
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope, EventTypes, PoisonMessage
from services.kit.migrations import migrate

# Bookkeeping, and the records analytics' own RPCs and sweeps write (docs/decisions/0048),
# not projections of the history: what a rebuild leaves out of the comparison.
NOT_COMPARED = {
    table.name
    for table in (
        inbox,
        idempotency_keys,
        outbox,
        scheduled_jobs,
        surveys,
        survey_recipients,
        survey_answers,
        churn_risks,
    )
}
FETCH = 2000  # messages a pull asks for
STALL = 5.0  # seconds without a message after which a read ends
JS_API = "$JS.API"  # the subject prefix of JetStream's API (no domain, as `connect` uses)
STATUS = "Status"  # the header nats-py puts a status line's code in
AHEAD = 10  # fetched batches waiting (two applies' worth: reading goes on while merging)
APPLY = 10_000  # events applied at a time, about

Say = Callable[[str], None]


@dataclass
class Report:
    sequences: dict[str, int] = field(default_factory=dict)  # stream -> recorded sequence
    events: int = 0
    skipped: int = 0  # poison: parked by the live consumer, skipped here
    seconds: float = 0.0
    differences: dict[str, list[str]] = field(default_factory=dict)  # table -> samples
    compared_rows: int = 0

    def as_text(self, compared: bool) -> str:
        lines = [
            f"  {stream} up to sequence {seq}" for stream, seq in sorted(self.sequences.items())
        ]
        if compared and not self.differences:
            lines.append(f"the rebuilt store matches the live one ({self.compared_rows:,} rows)")
        for table, samples in sorted(self.differences.items()):
            lines.append(f"DIFFERENT {table}:")
            lines += [f"    {sample}" for sample in samples]
        return "\n".join(lines)

    def as_json(self, into: str, compared: bool) -> str:
        return json.dumps(
            {
                "into": into,
                "sequences": self.sequences,
                "events": self.events,
                "skipped": self.skipped,
                "seconds": round(self.seconds, 3),
                "compared": compared,
                "compared_rows": self.compared_rows,
                "matches": compared and not self.differences,
                "differences": self.differences,
            }
        )

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def rebuild(
    *,
    nats_url: str,
    nats_auth: NatsAuth | None = None,
    live: Database,
    fresh: Database,
    subscriptions: Sequence[Subscription],
    migrations: Any,
    say: Say = print,
    compare: bool = True,
) -> Report:
    report = Report()
    nc = await connect(nats_url, "analytics-rebuild", auth=nats_auth)
    try:
        js = nc.jetstream()
        for stream in sorted({s.stream for s in subscriptions}):
            report.sequences[stream] = (await js.stream_info(stream)).state.last_seq
        await migrate(fresh, migrations, service="analytics")
        totals = Totals(await _copy_tombstones(live, fresh))
        started = time.perf_counter()
        with _cyclic_collector_paused():
            for stream in sorted(report.sequences):
                readers = [s for s in subscriptions if s.stream == stream]
                await _replay(nc, js, fresh, stream, readers, totals, report, started, say)
            writing = time.perf_counter()
            async with fresh.write() as session:
                await fresh_store.write(session, totals)
        # The merge holds every row in memory until this write: its peak is what sizes the
        # process for a history (docs/decisions/0034).
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        say(
            f"  wrote {totals.rows:,} rows in {time.perf_counter() - writing:.1f}s "
            f"(peak memory {peak:,.0f} MiB)"
        )
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


@contextlib.contextmanager
def _cyclic_collector_paused() -> Iterator[None]:
    """The merge holds every row of the history in memory, millions of dicts, and each full
    pass of Python's cyclic collector walks them all again, more often as they grow. The
    replay makes next to no reference cycles, so the collector waits until it is over."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _copy_tombstones(live: Database, fresh: Database) -> list[dict[str, Any]]:
    async with live.read() as session:
        rows = [dict(row._mapping) for row in await session.execute(select(tombstones))]
    if rows:
        async with fresh.write() as session:
            await session.execute(tombstones.insert(), rows)
    return rows


async def _replay(
    nc: Client,
    js: JetStreamContext,
    fresh: Database,
    stream: str,
    readers: Sequence[Subscription],
    totals: Totals,
    report: Report,
    started: float,
    say: Say,
) -> None:
    """Read `stream` once, up to its recorded sequence, and hand each event to every
    subscription of `readers` that reads its type, as their live consumers would get it.

    The consumer has no subject filter: nats-server delivers a stream about fifteen times
    slower through a consumer with many filters (one per event type) than through none, so
    the types are picked here, by `ce-type`, and a type that does not match its subject is
    skipped as the live consumer parks it. The next batch is fetched while the last is
    applied (JetStream and the merge work side by side); `APPLY` events are applied at a
    time: the effects of a batch merge before they reach the totals, so a bigger one has
    fewer rows to merge."""
    last = report.sequences[stream]
    if last == 0:
        return
    types = [(subscription, EventTypes(subscription.event_types)) for subscription in readers]
    consumer = await js.add_consumer(
        stream,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
            max_waiting=1,
        ),
    )
    fetched: asyncio.Queue[list[Msg] | None] = asyncio.Queue(maxsize=AHEAD)
    pulled = Pull(nc, f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer.name}", last, fetched)

    async def fetch() -> None:
        try:
            if consumer.num_pending:
                await pulled.run()
        finally:
            await fetched.put(None)

    reader = asyncio.create_task(fetch())
    shown = time.perf_counter()
    # The ids of the events applied: what the inbox does for a live consumer. Every reader
    # of an event gets each of its copies, so one set serves the whole stream.
    seen: set[str] = set()
    # The other readers' last transaction: the merge goes on while the store works on it.
    writing: asyncio.Task[None] | None = None
    try:
        done = False
        while not done:
            batches: dict[str, list[tuple[Any, Envelope]]] = {r.name: [] for r in readers}
            size = 0
            while size < APPLY:
                msgs = await fetched.get()
                if msgs is None:
                    done = True
                    break
                for msg in msgs:
                    try:
                        envelope = Envelope.from_headers(msg.headers, msg.data)
                        wanted = [(s, t) for s, t in types if envelope.type in t]
                        if not wanted or envelope.id in seen:
                            continue
                        event = wanted[0][1].decode(envelope)
                        if msg.subject.rsplit(".", 1)[-1] != event.DESCRIPTOR.name:
                            raise PoisonMessage("ce-type does not match the subject")
                    except PoisonMessage:
                        report.skipped += 1
                        continue
                    seen.add(envelope.id)
                    for subscription, _ in wanted:
                        batches[subscription.name].append((event, envelope))
                        size += 1
            others = _apply(readers, batches, totals)
            if others:
                writing = asyncio.create_task(_write(fresh, others, after=writing))
            report.events += size
            now = time.perf_counter()
            if now - shown >= 1.0:
                shown = now
                rate = report.events / (now - started)
                say(f"  {stream}: {report.events:,} events, {rate:,.0f}/s")
        await reader
        if writing is not None:
            await writing
    finally:
        for task in (reader, writing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await pulled.close()


class Pull:
    """Every message of an ephemeral pull consumer up to sequence `last`, in batches of
    `FETCH` put on `fetched`.

    nats-py's `fetch` waits for each message with its own `wait_for` (a task and a timer a
    message): reading 40,000 messages took 1.5 s of CPU through it, 0.6 s this way. Here
    the batches are asked for by hand (`no_wait`: the stored messages, then a status when
    fewer than a batch are left) and handed to a callback, which nats-py calls for each
    message in order without a task of its own."""

    def __init__(
        self, nc: Client, ask: str, last: int, fetched: asyncio.Queue[list[Msg] | None]
    ) -> None:
        self._nc = nc
        self._ask = ask
        self._last = last
        self._fetched = fetched
        self._batch: list[Msg] = []
        self._request = json.dumps({"batch": FETCH, "no_wait": True}).encode()
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inbox = nc.new_inbox()
        self._subscription: NatsSubscription | None = None
        self._arrived = 0

    async def run(self) -> None:
        self._subscription = await self._nc.subscribe(self._inbox, cb=self._take)
        await self._nc.publish(self._ask, self._request, reply=self._inbox)
        while not self._done.done():
            seen = self._arrived
            await asyncio.wait([self._done], timeout=STALL)
            if not self._done.done() and self._arrived == seen:
                return  # the server stopped answering: what came is what there is
        self._done.result()

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    async def _take(self, msg: Msg) -> None:
        self._arrived += 1
        try:
            if msg.headers and msg.headers.get(STATUS):
                await self._hand_on(ended=True)  # no messages left for this request
                return
            self._batch.append(msg)
            if len(self._batch) >= FETCH:
                await self._hand_on(ended=False)
        except Exception as error:  # a callback's error would otherwise only be logged
            if not self._done.done():
                self._done.set_exception(error)

    async def _hand_on(self, *, ended: bool) -> None:
        msgs, self._batch = self._batch, []
        final = msgs[-1].metadata if msgs else None
        # Sequences rise through a batch: only one that ends past `last` is filtered.
        if final is not None and final.sequence.stream > self._last:
            msgs = [m for m in msgs if m.metadata.sequence.stream <= self._last]
        if msgs:
            await self._fetched.put(msgs)
        if ended or final is None or final.sequence.stream >= self._last or not final.num_pending:
            if not self._done.done():
                self._done.set_result(None)
            return
        await self._nc.publish(self._ask, self._request, reply=self._inbox)


def _apply(
    readers: Sequence[Subscription],
    batches: dict[str, list[tuple[Any, Envelope]]],
    totals: Totals,
) -> list[tuple[Subscription, list[tuple[Any, Envelope]]]]:
    """Analytics' facts into the totals, through the live consumers' own fact functions;
    the other readers' batches are returned, for `_write`."""
    others = []
    for subscription in readers:
        batch = batches[subscription.name]
        if not batch:
            continue
        if subscription in FACT_SUBSCRIPTIONS:
            totals.add(effects_of(batch))
        else:
            others.append((subscription, batch))
    return others


async def _write(
    fresh: Database,
    others: list[tuple[Subscription, list[tuple[Any, Envelope]]]],
    *,
    after: asyncio.Task[None] | None,
) -> None:
    """The other readers' batches in one transaction, each as its live consumer applies
    it, once the transaction before (`after`) has committed: they keep the stream's order."""
    if after is not None:
        await after
    async with fresh.write() as session:
        for subscription, batch in others:
            await subscription.apply(session, batch)


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
