"""The consumer kit on faststream's TestNatsBroker: typed handlers, filter subjects from the
catalogue, and what happens to a message whose handler fails or that is poison."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.client import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from studyhall.analytics.v1 import analytics_events_pb2 as analytics
from studyhall.members.v1 import care_events_pb2 as care
from studyhall.members.v1 import members_events_pb2 as members
from studyhall_consumer.catalogue import Catalogue, UnknownEvent
from studyhall_consumer.fetch_timeouts import raise_nats_timeouts_from_fetch
from studyhall_consumer.subscriber import BatchConsumer, Event, Handlers, RetryPolicy, subscribe
from tests.clients.support import recorded, recorded_msg

pytestmark = pytest.mark.unit

CATALOGUE = Path(__file__).parents[2] / "docs" / "asyncapi.json"


def _record(name: str) -> dict[str, object]:
    (record,) = [r for r in recorded() if r["name"] == name]
    return record


def test_the_catalogue_names_each_events_stream_and_subjects() -> None:
    catalogue = Catalogue.load(CATALOGUE)
    joined = catalogue.channel(members.MemberJoined)
    assert joined.stream == "STUDYHALL_MEMBERS"
    assert joined.subject() == "studyhall.members.*.MemberJoined"
    assert joined.subject("c1") == "studyhall.members.c1.MemberJoined"
    churn = catalogue.channel("studyhall.analytics.v1.ChurnRiskChanged")
    assert (churn.stream, churn.subject()) == (
        "STUDYHALL_ANALYTICS",
        "studyhall.analytics.*.ChurnRiskChanged",
    )
    # The copy the kit ships is the repository's catalogue (make asyncapi writes both).
    assert Catalogue.load().event_types() == catalogue.event_types()
    with pytest.raises(UnknownEvent):
        catalogue.channel("studyhall.members.v1.NoSuchEvent")


async def test_typed_handlers_receive_their_decoded_events_through_faststream() -> None:
    inactive: list[Event[care.MemberInactive]] = []
    churn: list[Event[analytics.ChurnRiskChanged]] = []
    handlers = Handlers()

    @handlers.on(care.MemberInactive)
    async def member_inactive(event: Event[care.MemberInactive]) -> None:
        inactive.append(event)

    @handlers.on(analytics.ChurnRiskChanged)
    async def churn_risk(event: Event[analytics.ChurnRiskChanged]) -> None:
        churn.append(event)

    broker = NatsBroker()
    subscribe(broker, handlers, durable="kit-unit")
    # One batch pull subscriber per stream, filtered on the handled types only.
    filters = sorted(tuple(s.filter_subjects) for s in broker.subscribers)  # type: ignore[attr-defined]
    assert filters == [
        ("studyhall.analytics.*.ChurnRiskChanged",),
        ("studyhall.members.*.MemberInactive",),
    ]
    async with TestNatsBroker(broker) as test_broker:
        for name in ("member-inactive", "churn-risk-changed-capitalized-headers", "greeting"):
            record = _record(name)
            await test_broker.publish(
                base64.b64decode(str(record["data"])),
                str(record["subject"]),
                headers=dict(record["headers"]),  # type: ignore[call-overload]
            )
    assert [(e.message.user_id, e.message.days_inactive) for e in inactive] == [("bob", 14)]
    assert inactive[0].id == _record("member-inactive")["headers"]["ce-id"]  # type: ignore[index]
    assert inactive[0].community_id == inactive[0].message.community_id
    assert [(e.message.user_id, e.message.version) for e in churn] == [("bob", 3)]
    # A Greeting has no handler here: its subject is outside the filters, it never arrives.


def _failing_consumer(on_give_up: list[str], calls: list[str]) -> tuple[BatchConsumer, Handlers]:
    handlers = Handlers()

    @handlers.on(care.MemberInactive)
    async def member_inactive(event: Event[care.MemberInactive]) -> None:
        calls.append(event.id)
        raise RuntimeError("webhook endpoint down")

    async def give_up(msg: Msg, reason: str) -> None:
        on_give_up.append(reason)

    policy = RetryPolicy(max_deliveries=3, base_delay=0.1, max_delay=5.0)
    return BatchConsumer(handlers, "kit-unit", policy, on_give_up=give_up), handlers


async def test_a_failing_handler_is_retried_with_backoff_then_given_up() -> None:
    given_up: list[str] = []
    calls: list[str] = []
    consumer, _ = _failing_consumer(given_up, calls)
    settled = []
    for delivery in (1, 2, 3):
        msg = recorded_msg(_record("member-inactive"))
        msg.delivered = delivery
        await consumer([msg])  # type: ignore[list-item]
        settled.append(msg.settled)
    assert settled == [[("nak", 0.2)], [("nak", 0.4)], [("term", None)]]
    assert len(calls) == 3
    assert given_up == ["RuntimeError: webhook endpoint down"]


async def test_poison_is_terminated_at_once_and_never_reaches_a_handler() -> None:
    calls: list[Message] = []
    poisoned: list[str] = []
    handlers = Handlers()

    @handlers.on(care.MemberInactive)
    async def member_inactive(event: Event[care.MemberInactive]) -> None:
        calls.append(event.message)

    async def poison(msg: Msg, reason: str) -> None:
        poisoned.append(reason)

    consumer = BatchConsumer(handlers, "kit-unit", on_poison=poison)
    bad = recorded_msg(_record("poison-undecodable-body"))
    good = recorded_msg(_record("member-inactive"))
    await consumer([bad, good])  # type: ignore[list-item]
    assert bad.settled == [("term", None)]
    assert good.settled == [("ack", None)]
    assert len(calls) == 1
    assert poisoned
    assert poisoned[0].startswith("undecodable studyhall.members.v1.MemberInactive")


def test_one_type_has_one_handler() -> None:
    handlers = Handlers()

    async def handle(event: Event[care.Greeting]) -> None:
        return None

    handlers.on(care.Greeting)(handle)
    with pytest.raises(ValueError, match="already has a handler"):
        handlers.on(care.Greeting)(handle)


async def test_each_handler_runs_in_a_span_that_continues_the_producers_trace() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handlers = Handlers()

    @handlers.on(care.MemberInactive)
    async def member_inactive(event: Event[care.MemberInactive]) -> None:
        assert trace.get_current_span().is_recording()

    @handlers.on(care.StreakAtRisk)
    async def streak(event: Event[care.StreakAtRisk]) -> None:
        raise RuntimeError("down")

    consumer = BatchConsumer(handlers, "kit-unit", tracer=provider.get_tracer("test"))
    await consumer([recorded_msg(_record(n)) for n in ("member-inactive", "streak-at-risk")])  # type: ignore[misc]
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"process MemberInactive", "process StreakAtRisk"}
    traceparent = str(_record("member-inactive")["headers"]["traceparent"])  # type: ignore[index]
    for span in spans.values():
        assert span.kind is SpanKind.CONSUMER
        assert span.context is not None
        assert span.parent is not None
        assert format(span.context.trace_id, "032x") == traceparent.split("-")[1]
        assert format(span.parent.span_id, "016x") == traceparent.split("-")[2]
        assert span.attributes is not None
        assert span.attributes["messaging.consumer.group.name"] == "kit-unit"
    assert spans["process StreakAtRisk"].status.status_code is StatusCode.ERROR
    assert spans["process MemberInactive"].status.status_code is StatusCode.UNSET


async def test_a_fetch_that_runs_out_of_time_raises_the_timeout_faststream_ends_a_batch_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """faststream stops filling a batch on nats-py's TimeoutError only; the plain asyncio one,
    which nats-py raises when a follow-up fetch's time is up, would drop the batch so far."""
    answers: list[BaseException | list[str]] = [TimeoutError(), NatsTimeout(), ["m"]]

    async def fetch(self: object, batch: int = 1, timeout: float | None = 5) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch)
    raise_nats_timeouts_from_fetch()
    raise_nats_timeouts_from_fetch()  # once only: a second subscribe wraps nothing again
    pull: Any = JetStreamContext.PullSubscription
    for _ in range(2):
        with pytest.raises(NatsTimeout):
            await pull.fetch(object(), 10, timeout=0.1)
    assert await pull.fetch(object(), 10, timeout=0.1) == ["m"]
    assert pull.fetch.__wrapped__ is fetch
