"""Poison goes to the dead-letter stream at once and the flow goes on; a handler that keeps
failing is parked after its attempts; a replay after the fix applies the event once."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.app import SPEC as ANALYTICS
from services.analytics.settings import AnalyticsSettings
from services.kit.database import Database
from services.kit.events import deadletter
from services.kit.events.connection import servers
from services.kit.events.consumer import Consumer, Subscription
from services.kit.events.envelope import Envelope, event_subject
from services.kit.events.inbox import inbox_table
from services.kit.events.streams import StreamLimits, ensure_stream, service_stream
from studyhall.analytics.v1 import analytics_service_pb2 as analytics_pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as analytics_grpc
from studyhall.members.v1 import members_events_pb2 as events
from studyhall.members.v1 import members_service_pb2 as members_pb
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    client: Client = await nats.connect(servers(nats_url))
    context = client.jetstream()
    await ensure_stream(context, service_stream("members", StreamLimits()))
    try:
        yield context
    finally:
        await client.close()


def _joined(community_id: str, user_id: str, version: int = 1) -> tuple[str, bytes, dict[str, str]]:
    return _event(events.MemberJoined(community_id=community_id, user_id=user_id, version=version))


def _event(event: Any) -> tuple[str, bytes, dict[str, str]]:
    community_id = event.community_id
    user_id = getattr(event, "user_id", "")
    envelope = Envelope(
        id=str(uuid.uuid4()),
        source="/studyhall/members",
        type=event.DESCRIPTOR.full_name,
        time=datetime.now(UTC),
        subject=f"communities/{community_id}/members/{user_id}",
        community_id=community_id,
        data=event.SerializeToString(),
    )
    subject = event_subject("members", community_id, event.DESCRIPTOR.name)
    return subject, envelope.data, envelope.headers()


async def _letters_for(
    js: JetStreamContext, community_id: str, count: int
) -> list[deadletter.DeadLetter]:
    for _ in range(200):
        letters = [
            letter
            for letter in await deadletter.list_dead_letters(js)
            if f".{community_id}." in letter.subject
        ]
        if len(letters) >= count:
            return letters
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} dead letters for {community_id}")


@pytest.fixture
async def analytics(
    tmp_path: Path, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        ANALYTICS,
        AnalyticsSettings,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'analytics.db'}",
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as running:
        yield running


async def test_poison_messages_are_parked_with_a_reason_and_the_flow_goes_on(
    js: JetStreamContext, analytics: RunningService
) -> None:
    community_id = str(uuid.uuid4())
    subject, body, headers = _joined(community_id, "ivy")
    no_type = {k: v for k, v in headers.items() if k != "ce-type"}
    unknown = {
        **headers,
        "ce-type": "studyhall.members.v1.MemberExploded",
        "Nats-Msg-Id": "u1" + community_id,
    }
    garbage = {**headers, "ce-id": str(uuid.uuid4()), "Nats-Msg-Id": "g1" + community_id}
    await js.publish(subject, body)  # no headers at all
    await js.publish(subject, body, headers={**no_type, "Nats-Msg-Id": "n1" + community_id})
    await js.publish(subject, body, headers=unknown)
    await js.publish(subject, b"\xff\xff\xff\xff", headers=garbage)
    await js.publish(subject, body, headers=headers)  # the one valid event
    created_subject, created_body, created_headers = _event(
        events.CommunityCreated(
            community_id=community_id,
            owner_user_id="ivy",
            version=1,
            visibility=members_pb.VISIBILITY_PUBLIC,
        )
    )
    await js.publish(created_subject, created_body, headers=created_headers)

    stub = analytics_grpc.AnalyticsServiceStub(analytics.channel)
    members = -1
    for _ in range(200):
        try:
            stats = await stub.GetCommunityStats(
                analytics_pb.GetCommunityStatsRequest(community_id=community_id),
                metadata=analytics.auth("ops", operator=True),
            )
            members = stats.stats.member_count
        except grpc.aio.AioRpcError as error:
            # Analytics learns of the community from CommunityCreated, a moment later.
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
        if members == 1:
            break
        await asyncio.sleep(0.05)
    assert members == 1

    # analytics has two consumers of MemberJoined (its figures and its role projection);
    # each parks its own copy.
    letters = [
        letter
        for letter in await _letters_for(js, community_id, 8)
        if letter.consumer == "analytics-members"
    ]
    reasons = sorted(letter.reason for letter in letters)
    assert len(reasons) == 4
    assert any("no CloudEvents headers" in r for r in reasons)
    assert any("missing headers: ce-type" in r for r in reasons)
    assert any("unknown event type 'studyhall.members.v1.MemberExploded'" in r for r in reasons)
    assert any("undecodable" in r for r in reasons)
    assert all(letter.subject == subject for letter in letters)


class Effects:
    """A projection of the tests' own: a row per applied event, next to the consumer's inbox."""

    def __init__(self) -> None:
        self.metadata = MetaData()
        self.inbox = inbox_table(self.metadata)
        self.table = Table(
            "effects",
            self.metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("community_id", String(36)),
        )

    async def create(self, database: Database) -> None:
        async with database.writer.begin() as connection:
            await connection.run_sync(self.metadata.create_all)

    async def record(self, session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
        for event, _envelope in batch:
            await session.execute(self.table.insert().values(community_id=event.community_id))

    def consumer(self, database: Database, nats_url: str, apply: Any, **options: Any) -> Consumer:
        subscription = Subscription(
            f"test-{uuid.uuid4().hex[:8]}", "members", (events.MemberJoined,), apply
        )
        return Consumer(database, self.inbox, subscription, nats_url=nats_url, **options)


async def _until(condition: Callable[[], bool | Awaitable[bool]]) -> None:
    """Wait up to 10 s for `condition()` to hold; the caller asserts it after."""
    for _ in range(200):
        held = condition()
        if await held if inspect.isawaitable(held) else held:
            return
        await asyncio.sleep(0.05)


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_failing_handler_is_parked_then_replayed_once_after_the_fix(
    js: JetStreamContext, nats_url: str, tmp_path: Path
) -> None:
    community_id = str(uuid.uuid4())
    effects = Effects()
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'flaky.db'}")
    await effects.create(database)
    broken = True

    async def record(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
        if broken and any(event.community_id == community_id for event, _ in batch):
            raise RuntimeError("the projection cannot take this yet")
        await effects.record(session, batch)

    consumer = effects.consumer(database, nats_url, record, max_handler_attempts=2)
    running = asyncio.create_task(consumer.run())

    async def applied() -> int:
        async with database.read() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(effects.table)
                .where(effects.table.c.community_id == community_id)
            )
        return int(count or 0)

    try:
        subject, body, headers = _joined(community_id, "zoe")
        await js.publish(subject, body, headers=headers)
        [letter] = await _letters_for(js, community_id, 1)
        assert letter.reason.startswith("handler failed 2 times: RuntimeError")
        assert letter.event_id == headers["ce-id"]
        assert consumer.stats.handler_failures == 2
        assert await applied() == 0

        broken = False
        replayed = await deadletter.replay(js, letter.sequence)
        assert replayed.event_id == headers["ce-id"]
        await _until(lambda: _equals(applied(), 1))
        assert await applied() == 1
        assert not [
            item
            for item in await deadletter.list_dead_letters(js)
            if item.sequence == letter.sequence
        ]

        # The same event again (a second replay, a stray copy): the inbox keeps it at once.
        await js.publish(subject, body, headers={**headers, "Nats-Msg-Id": str(uuid.uuid4())})
        await _until(lambda: consumer.stats.duplicates >= 1)
        assert consumer.stats.duplicates >= 1
        assert await applied() == 1
        with pytest.raises(LookupError):
            await deadletter.replay(js, letter.sequence)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await database.close()


async def test_a_database_that_is_not_there_is_waited_for_not_blamed_on_the_event(
    js: JetStreamContext, nats_url: str, postgres_server: Any
) -> None:
    """A consumer that cannot reach its own database keeps its events for later (nothing is
    parked: the events are sound) and, cancelled meanwhile, stops."""
    community_id = str(uuid.uuid4())
    effects = Effects()
    name = "t_" + uuid.uuid4().hex[:16]
    database = Database(postgres_server.database_url(name))
    consumer = effects.consumer(
        database, nats_url, effects.record, max_handler_attempts=2, max_backoff=0.2
    )
    running = asyncio.create_task(consumer.run())
    try:
        subject, body, headers = _joined(community_id, "zoe")
        await js.publish(subject, body, headers=headers)
        await _until(lambda: consumer.stats.transient_failures >= 3)
        assert consumer.stats.transient_failures >= 3
        assert consumer.stats.handler_failures == 0
        assert consumer.stats.dead_letters == 0

        # The database appears with its tables already there, as after a restore: a
        # consumer that found it without its tables would count a handler failure instead.
        staged = Database(postgres_server.create_database(name + "_staged"))
        await effects.create(staged)
        await staged.close()
        postgres_server.rename_database(name + "_staged", name)
        await _until(lambda: consumer.stats.processed == 1)
        assert consumer.stats.processed == 1
        assert consumer.stats.dead_letters == 0

        # Gone again, and the consumer cancelled while it waits: it stops all the same.
        await database.close()
        postgres_server.drop_database(name)
        subject, body, headers = _joined(community_id, "yan")
        await js.publish(subject, body, headers=headers)
        await _until(lambda: consumer.stats.transient_failures >= 6)
        running.cancel()
        await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), timeout=5)
        assert running.done()
        assert consumer.stats.dead_letters == 0
        assert not [
            letter
            for letter in await deadletter.list_dead_letters(js)
            if f".{community_id}." in letter.subject
        ]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await database.close()
        postgres_server.drop_database(name)
        postgres_server.drop_database(name + "_staged")
