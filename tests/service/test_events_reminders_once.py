"""Reminders in real processes, read from the bus: each ActivityReminderDue is published
once when the service is killed between planning and the reminders' time and started again
after it (SQLite), and once with two replicas on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import nats
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from nats.errors import TimeoutError as NatsTimeout
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from services.events.store.tables import access
from services.kit.access import Role
from services.kit.auth import LocalSigner
from services.kit.database import Database
from services.kit.events.connection import servers
from services.kit.projection import upsert_newer
from studyhall.events.v1 import activities_events_pb2 as events_pb
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc
from tests.support.catalogue import new_database
from tests.support.processes import replicas, service_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

MEMBERS = ("ann", "bob")
# Lead times a second apart, an hour before the start: both fall due a few seconds from now.
LEADS = (timedelta(hours=1), timedelta(minutes=59, seconds=59))


class ReminderFeed:
    """Every ActivityReminderDue of one community on the events stream, as it arrives."""

    def __init__(self, js: JetStreamContext, community_id: str) -> None:
        self.js = js
        self.subject = f"studyhall.events.{community_id}.ActivityReminderDue"
        self.subscription: JetStreamContext.PushSubscription | None = None
        self.seen: Counter[tuple[str, int]] = Counter()
        self.ids: set[str] = set()

    async def drain(self) -> Counter[tuple[str, int]]:
        """What has arrived so far, by registration and lead time (in seconds)."""
        if self.subscription is None:
            try:
                # The first events process creates the stream.
                self.subscription = await self.js.subscribe(self.subject, ordered_consumer=True)
            except NotFoundError:
                return self.seen
        while True:
            try:
                msg = await self.subscription.next_msg(timeout=0.2)
            except NatsTimeout:
                return self.seen
            self.ids.add((msg.headers or {})["ce-id"])
            due = events_pb.ActivityReminderDue.FromString(msg.data)
            self.seen[(due.registration_id, int(due.lead_time.ToTimedelta().total_seconds()))] += 1

    async def each_once(self, expected: set[tuple[str, int]]) -> bool:
        """Whether each expected reminder has arrived once; fails at once on a second."""
        seen = await self.drain()
        assert all(count == 1 for count in seen.values()), seen
        assert set(seen) <= expected, set(seen) - expected
        assert len(self.ids) == sum(seen.values())
        return set(seen) == expected


@asynccontextmanager
async def _feed(nats_url: str, community_id: str) -> AsyncIterator[ReminderFeed]:
    client = await nats.connect(servers(nats_url))
    try:
        feed = ReminderFeed(client.jetstream(), community_id)
        yield feed
        if feed.subscription is not None:
            await feed.subscription.unsubscribe()
    finally:
        await client.close()


async def _community(database_url: str, community_id: str) -> None:
    """A community with a host who may plan activities and members who register."""
    people = [("host", Role.MODERATOR), *((member, Role.MEMBER) for member in MEMBERS)]
    database = Database(database_url)
    try:
        async with database.write() as session:
            await upsert_newer(
                session,
                access.communities,
                [{"community_id": community_id, "visibility": 1, "version": 1}],
                ["community_id"],
            )
            await upsert_newer(
                session,
                access.roles,
                [
                    {
                        "community_id": community_id,
                        "user_id": user,
                        "role": int(role),
                        "active": True,
                        "version": 1,
                    }
                    for user, role in people
                ],
                ["community_id", "user_id"],
            )
    finally:
        await database.close()


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _lead(delta: timedelta) -> Duration:
    value = Duration()
    value.FromTimedelta(delta)
    return value


async def _plan_with_registrations(
    port: int, data_dir: Path, community_id: str, count: int, start: datetime
) -> set[tuple[str, int]]:
    """`count` activities with both lead times, every member registered: the reminders due,
    by registration and lead time."""
    signer = LocalSigner.ensure(data_dir)

    def auth(user: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {signer.mint(user)}")]

    expected: set[tuple[str, int]] = set()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ActivitiesServiceStub(channel)
        for n in range(count):
            made = await stub.CreateActivity(
                pb.CreateActivityRequest(
                    community_id=community_id,
                    kind=pb.ACTIVITY_KIND_ONLINE_LECTURE,
                    title=f"Listening practice #{n}",
                    join_url="https://meet.example.org/listening",
                    start_time=_at(start),
                    end_time=_at(start + timedelta(hours=1)),
                    reminder_offsets=[_lead(lead) for lead in LEADS],
                ),
                metadata=auth("host"),
            )
            for member in MEMBERS:
                registered = await stub.Register(
                    pb.RegisterRequest(community_id=community_id, activity_id=made.activity.id),
                    metadata=auth(member),
                )
                expected |= {
                    (registered.registration.id, int(lead.total_seconds())) for lead in LEADS
                }
    return expected


async def test_reminders_planned_before_a_kill_are_published_once_after_the_restart(
    tmp_path: Path, redis_url: str, nats_url: str
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    community_id = str(uuid.uuid4())
    async with _feed(nats_url, community_id) as feed:
        with service_process("events", tmp_path, database_url, redis_url, nats_url) as (
            process,
            port,
        ):
            await _community(database_url, community_id)
            start = datetime.now(UTC) + LEADS[0] + timedelta(seconds=3)
            expected = await _plan_with_registrations(port, tmp_path, community_id, 3, start)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        # Down when they fall due: nothing is published.
        last_due = start - LEADS[-1]
        await asyncio.sleep(max(0.0, (last_due - datetime.now(UTC)).total_seconds()) + 0.5)
        assert not await feed.each_once(expected)
        assert not feed.seen

        with service_process("events", tmp_path, database_url, redis_url, nats_url):

            async def done() -> bool:
                return await feed.each_once(expected)

            await eventually(done, "every reminder is published after the restart", seconds=20)
            await asyncio.sleep(1.0)  # a second run would have happened by now
            assert await feed.each_once(expected)
    assert len(expected) == 3 * len(MEMBERS) * len(LEADS)


async def test_two_replicas_publish_each_reminder_once(
    tmp_path: Path, redis_url: str, nats_url: str, request: pytest.FixtureRequest
) -> None:
    community_id = str(uuid.uuid4())
    with new_database("postgresql", request, tmp_path) as database_url:
        async with _feed(nats_url, community_id) as feed:
            with replicas(2, "events", tmp_path, database_url, redis_url, nats_url) as [
                (_, port),
                (two, _),
            ]:
                await _community(database_url, community_id)
                start = datetime.now(UTC) + LEADS[0] + timedelta(seconds=5)
                expected = await _plan_with_registrations(port, tmp_path, community_id, 10, start)

                async def done() -> bool:
                    return await feed.each_once(expected)

                await eventually(done, "every reminder is published", seconds=40)
                await asyncio.sleep(1.0)
                assert await feed.each_once(expected)
                assert two.poll() is None
    assert len(expected) == 10 * len(MEMBERS) * len(LEADS)
