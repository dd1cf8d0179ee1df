"""One trace runs from a client's gRPC call through the outbox row, the relay's publish and
the consumer's handling, as parent and child spans (docs/decisions/0002)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from services.analytics.app import SPEC as ANALYTICS
from services.analytics.settings import AnalyticsSettings
from services.kit.cache import ResilientRedis
from services.kit.database import Database
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session")
def exporter() -> InMemorySpanExporter:
    # The global provider can be set once per process; the kit's tracers follow it.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("another tracer provider is installed in this process")
    return _EXPORTER


@pytest.fixture
async def services(
    exporter: InMemorySpanExporter,
    tmp_path: Path,
    redis_url: str,
    nats_url: str,
    data_dir: Path,
) -> AsyncIterator[tuple[RunningService, RunningService]]:
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "data_dir": data_dir}
    async with (
        running_service(
            MEMBERS,
            MembersSettings,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
            # As in production, every call is counted against the caller's limit in Redis.
            rate_limit_per_caller="10000/second",
            **common,
        ) as members,
        running_service(
            ANALYTICS,
            AnalyticsSettings,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}",
            **common,
        ) as analytics,
    ):
        yield members, analytics


def _by_name(spans: tuple[ReadableSpan, ...], trace_id: int) -> dict[str, ReadableSpan]:
    # Analytics consumes each event twice (its figures and its role projection); follow
    # the figures.
    return {
        span.name: span
        for span in spans
        if span.context is not None
        and span.context.trace_id == trace_id
        and (span.attributes or {}).get("messaging.consumer.group.name", "analytics-members")
        == "analytics-members"
    }


async def test_one_trace_from_the_call_to_the_consumer(
    services: tuple[RunningService, RunningService], exporter: InMemorySpanExporter
) -> None:
    members, _analytics = services
    tracer = trace.get_tracer("test.client")
    with tracer.start_as_current_span("client joins", kind=SpanKind.CLIENT) as client_span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        stub = members_grpc.MembersServiceStub(members.channel)
        await stub.CreateCommunity(
            members_pb.CreateCommunityRequest(name=f"Trace {uuid.uuid4().hex[:6]}", topic="x"),
            metadata=[*members.auth("tracy"), *carrier.items()],
        )
    trace_id = client_span.get_span_context().trace_id

    wanted = {
        "studyhall.members.v1.MembersService/CreateCommunity",
        "publish CommunityCreated",
        "process CommunityCreated",
        "publish MemberJoined",
        "process MemberJoined",
    }
    for _ in range(200):
        spans = _by_name(exporter.get_finished_spans(), trace_id)
        if wanted <= set(spans):
            break
        await asyncio.sleep(0.05)
    assert wanted <= set(spans), sorted(spans)

    def parent_of(name: str) -> int | None:
        parent = spans[name].parent
        return parent.span_id if parent else None

    def span_id(name: str) -> int:
        context = spans[name].context
        assert context is not None
        return int(context.span_id)

    rpc = "studyhall.members.v1.MembersService/CreateCommunity"
    assert parent_of(rpc) == client_span.get_span_context().span_id
    assert spans[rpc].kind is SpanKind.SERVER
    for event in ("CommunityCreated", "MemberJoined"):
        assert parent_of(f"publish {event}") == span_id(rpc)
        assert spans[f"publish {event}"].kind is SpanKind.PRODUCER
        published = spans[f"publish {event}"].attributes or {}
        assert published["messaging.operation.type"] == "send"  # `publish` is deprecated
        assert published["messaging.operation.name"] == "publish"
        assert parent_of(f"process {event}") == span_id(f"publish {event}")
        assert spans[f"process {event}"].kind is SpanKind.CONSUMER
        attributes = spans[f"process {event}"].attributes or {}
        assert attributes["messaging.system"] == "nats"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.operation.name"] == "process"
        assert attributes["messaging.consumer.group.name"] == "analytics-members"
    # No message bodies or personal data in spans: only ids and routing.
    for span in spans.values():
        for value in (span.attributes or {}).values():
            assert "Trace " not in str(value)


async def test_a_join_traces_its_sql_and_redis_under_the_rpc_and_leaves_no_orphans(
    services: tuple[RunningService, RunningService], exporter: InMemorySpanExporter
) -> None:
    """The SQL statements and Redis commands of a JoinCommunity are CLIENT spans under the
    RPC's server span, with the current database semantic conventions; statements run by the
    relay's and the consumers' loops outside any span get none (no orphan traces)."""
    members, _analytics = services
    stub = members_grpc.MembersServiceStub(members.channel)
    community = (
        await stub.CreateCommunity(
            members_pb.CreateCommunityRequest(name=f"Joined {uuid.uuid4().hex[:6]}", topic="x"),
            metadata=members.auth("owner"),
        )
    ).community
    exporter.clear()
    joined = await stub.JoinCommunity(
        members_pb.JoinCommunityRequest(community_id=community.id),
        metadata=members.auth("joiner"),
    )
    assert joined.membership.user_id == "joiner"
    rpc_name = "studyhall.members.v1.MembersService/JoinCommunity"
    finished = exporter.get_finished_spans()
    rpc = next(span for span in finished if span.name == rpc_name)
    assert rpc.context is not None
    assert (rpc.attributes or {})["rpc.method"] == rpc_name
    assert (rpc.attributes or {})["rpc.system.name"] == "grpc"
    assert (rpc.attributes or {})["rpc.response.status_code"] == "OK"
    children = [
        span
        for span in finished
        if span.parent is not None and span.parent.span_id == rpc.context.span_id
    ]
    sql = [s for s in children if (s.attributes or {}).get("db.system.name") == "sqlite"]
    redis = [s for s in children if (s.attributes or {}).get("db.system.name") == "redis"]
    assert sql, sorted(span.name for span in children)
    assert redis, sorted(span.name for span in children)
    for span in sql + redis:
        assert span.kind is SpanKind.CLIENT
        assert span.context is not None
        assert span.context.trace_id == rpc.context.trace_id
        attributes = span.attributes or {}
        assert attributes["db.operation.name"], span.name
        assert "db.statement" not in attributes
        assert "db.system" not in attributes
    assert any(
        (span.attributes or {}).get("db.operation.name") == "INSERT"
        and (span.attributes or {}).get("db.collection.name") == "memberships"
        for span in sql
    ), sorted(span.name for span in sql)

    # The relay publishes the join and analytics consumes it; their loops poll the database
    # outside any span meanwhile. Every database span has a parent all the same.
    for _ in range(200):
        names = {span.name for span in exporter.get_finished_spans()}
        if "process MemberJoined" in names:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a few more turns of the polling loops
    database_spans = [
        span
        for span in exporter.get_finished_spans()
        if "db.system.name" in (span.attributes or {})
    ]
    assert database_spans
    orphans = [span.name for span in database_spans if span.parent is None]
    assert not orphans, orphans


async def test_redis_and_sql_spans_name_the_operation_and_exist_only_under_a_span(
    exporter: InMemorySpanExporter, redis_url: str, tmp_path: Path
) -> None:
    redis = ResilientRedis(redis_url)
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'spans.db'}")
    key = f"studyhall:test:spans:{uuid.uuid4().hex}"

    async def work() -> None:
        await redis.call(lambda client: client.set(key, "1", ex=60), None)

        async def batch(client: Any) -> Any:
            pipe = client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, 60)
            return await pipe.execute()

        await redis.call(batch, None)
        async with database.write() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS notes (id INTEGER)"))
            await session.execute(text("INSERT INTO notes (id) VALUES (1)"))
        with pytest.raises(OperationalError):
            async with database.read() as session:
                await session.execute(text("SELECT id FROM missing_table"))

    try:
        exporter.clear()
        await work()  # no span is current: a background loop's calls
        assert not [s.name for s in exporter.get_finished_spans()]
        with trace.get_tracer("test").start_as_current_span("batch") as parent:
            await work()
    finally:
        await redis.close()
        await database.close()
    spans = [
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == parent.get_span_context().span_id
    ]
    by_name = {s.name: s.attributes or {} for s in spans}
    assert by_name["SET"]["db.system.name"] == "redis"
    assert by_name["SET"]["db.operation.name"] == "SET"
    assert key not in str(by_name["SET"])  # never a key or a value
    assert by_name["MULTI"]["db.operation.batch.size"] == 2
    assert by_name["INSERT notes"]["db.collection.name"] == "notes"
    assert by_name["INSERT notes"]["db.system.name"] == "sqlite"
    assert by_name["INSERT notes"]["db.query.text"] == "INSERT INTO notes (id) VALUES (1)"
    assert by_name["SELECT missing_table"]["error.type"] == "OperationalError"
