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

from services.analytics.app import SPEC as ANALYTICS
from services.analytics.settings import AnalyticsSettings
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
        assert parent_of(f"process {event}") == span_id(f"publish {event}")
        assert spans[f"process {event}"].kind is SpanKind.CONSUMER
        attributes = spans[f"process {event}"].attributes or {}
        assert attributes["messaging.system"] == "nats"
        assert attributes["messaging.consumer.group.name"] == "analytics-members"
    # No message bodies or personal data in spans: only ids and routing.
    for span in spans.values():
        for value in (span.attributes or {}).values():
            assert "Trace " not in str(value)
