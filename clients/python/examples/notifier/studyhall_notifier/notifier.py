"""Care signals to webhooks: which events, the JSON body, deduplication by event id."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faststream.nats import NatsBroker
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from studyhall.analytics.v1 import analytics_events_pb2 as analytics
from studyhall.events.v1 import activities_events_pb2 as activities
from studyhall.members.v1 import care_events_pb2 as care
from studyhall_consumer.catalogue import Catalogue
from studyhall_consumer.subscriber import BatchConsumer, Event, Handlers, subscribe
from studyhall_notifier.delivery import WebhookSender
from studyhall_notifier.sent import SentLog

# The facts that ask someone to be told something (decision 0010, DESIGN rule 16).
SIGNALS: tuple[type[Message], ...] = (
    care.MemberInactive,
    care.StreakAtRisk,
    care.Greeting,
    activities.ActivityReminderDue,
    analytics.ChurnRiskChanged,
)


def webhook_body(event: Event[Message]) -> bytes:
    """The JSON a receiver gets: the CloudEvents attributes and the event's fields (protobuf's
    JSON mapping, field names as in proto/)."""
    document: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "community_id": event.community_id,
        "data": MessageToDict(event.message, preserving_proto_field_name=True),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Notifier:
    sender: WebhookSender
    sent: SentLog
    clock: Callable[[], float] = time.time

    async def notify(self, event: Event[Message]) -> None:
        if event.id in self.sent:
            return  # a redelivery of an event already sent
        await self.sender.send(webhook_body(event), event_id=event.id, event_type=event.type)
        self.sent.record(event.id, self.clock())

    def handlers(self) -> Handlers:
        handlers = Handlers()
        for signal in SIGNALS:
            handlers.on(signal)(self.notify)
        return handlers


def attach(
    broker: NatsBroker,
    notifier: Notifier,
    *,
    durable: str = "notifier",
    catalogue: Catalogue | None = None,
    **options: Any,
) -> list[BatchConsumer]:
    """The notifier's subscribers on `broker`: one per stream (members, events, analytics)."""
    return subscribe(broker, notifier.handlers(), durable=durable, catalogue=catalogue, **options)
