"""One decoder: the services' own durable consumer and the consumer kit's subscriber read
the same recorded messages to the same events, and call the same ones poison for the same
reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from nats.aio.msg import Msg

from services.kit.database import Database
from services.kit.events.consumer import Consumer, Subscription
from services.kit.events.envelope import PoisonMessage
from studyhall.analytics.v1 import analytics_events_pb2 as analytics
from studyhall.events.v1 import activities_events_pb2 as activities
from studyhall.members.v1 import care_events_pb2 as care
from studyhall.members.v1 import members_events_pb2 as members
from studyhall_consumer.subscriber import BatchConsumer, Event, Handlers
from tests.clients.support import recorded, recorded_msg

pytestmark = pytest.mark.unit

TYPES: tuple[type[Message], ...] = (
    members.MemberJoined,
    care.MemberInactive,
    care.StreakAtRisk,
    care.Greeting,
    activities.ActivityReminderDue,
    analytics.ChurnRiskChanged,
)


async def _ignore(*_: Any) -> None:
    return None


def _services_consumer(tmp_path: Path) -> Consumer:
    return Consumer(
        Database(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"),
        sa.Table("inbox", sa.MetaData()),
        Subscription("conformance", "members", TYPES, _ignore),
        nats_url="nats://127.0.0.1:1",
    )


def _services_read(consumer: Consumer, record: dict[str, Any]) -> tuple[str, Any]:
    msg = recorded_msg(record)
    try:
        item = consumer._decode(msg)  # type: ignore[arg-type]
    except PoisonMessage as poison:
        return ("poison", poison.reason)
    return ("event", (item.envelope.id, item.event.DESCRIPTOR.full_name, MessageToDict(item.event)))


async def _kit_read(record: dict[str, Any]) -> tuple[str, Any]:
    seen: list[Event[Message]] = []
    poisoned: list[str] = []

    async def keep(event: Event[Message]) -> None:
        seen.append(event)

    async def poison(msg: Msg, reason: str) -> None:
        poisoned.append(reason)

    handlers = Handlers()
    for message_class in TYPES:
        handlers.on(message_class)(keep)
    msg = recorded_msg(record)
    await BatchConsumer(handlers, "conformance", on_poison=poison)([msg])  # type: ignore[list-item]
    if poisoned:
        assert msg.settled == [("term", None)]
        return ("poison", poisoned[0])
    assert msg.settled == [("ack", None)]
    (event,) = seen
    return ("event", (event.id, event.message.DESCRIPTOR.full_name, MessageToDict(event.message)))


async def test_the_services_and_the_kit_read_every_recorded_message_alike(
    tmp_path: Path,
) -> None:
    consumer = _services_consumer(tmp_path)
    outcomes = {}
    for record in recorded():
        services = _services_read(consumer, record)
        kit = await _kit_read(record)
        assert kit == services, record["name"]
        outcomes[record["name"]] = services[0]
    # The recording holds both kinds, so the comparison above compared something.
    assert outcomes["member-inactive"] == "event"
    assert outcomes["churn-risk-changed-capitalized-headers"] == "event"
    assert outcomes["activity-reminder-due"] == "event"
    assert sorted(name for name, kind in outcomes.items() if kind == "poison") == [
        "poison-bad-time",
        "poison-json-body",
        "poison-missing-type",
        "poison-no-headers",
        "poison-type-not-subject",
        "poison-undecodable-body",
        "poison-unknown-type",
    ]
