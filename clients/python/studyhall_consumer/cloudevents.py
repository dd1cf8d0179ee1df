"""CloudEvents 1.0 in binary mode over NATS: attributes in headers, protobuf in the body.

The one decoder of Studyhall events. The services' own consumers (services/kit/events/) and
the consumer kit's faststream subscribers both read messages through `Envelope.from_headers`
and `EventTypes.decode`, so what one accepts the other accepts, and what one calls poison the
other does too. This module needs protobuf and nothing else: no faststream, no nats-py.

A consumer that knows only the CloudEvents spec and proto/ can read every event: `ce-type`
is the full protobuf message name of the body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"

M = TypeVar("M", bound=Message)


class PoisonMessage(Exception):
    """A message no retry can fix: missing headers, unknown type, undecodable body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Envelope:
    id: str
    source: str
    type: str
    time: datetime
    subject: str
    community_id: str
    data: bytes
    traceparent: str = ""
    tracestate: str = ""

    def headers(self) -> dict[str, str]:
        headers = {
            "ce-specversion": SPEC_VERSION,
            "ce-id": self.id,
            "ce-source": self.source,
            "ce-type": self.type,
            "ce-time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "ce-subject": self.subject,
            "ce-communityid": self.community_id,
            "ce-datacontenttype": CONTENT_TYPE,
            "content-type": CONTENT_TYPE,
            # JetStream drops a second message with the same id inside its duplicate window.
            "Nats-Msg-Id": self.id,
        }
        if self.traceparent:
            headers["traceparent"] = self.traceparent
        if self.tracestate:
            headers["tracestate"] = self.tracestate
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | None, data: bytes) -> Envelope:
        if not headers:
            raise PoisonMessage("no CloudEvents headers")
        # Header names are case-insensitive (as in HTTP); other producers may capitalize.
        headers = {name.lower(): value for name, value in headers.items()}
        missing = [name for name in _REQUIRED if not headers.get(name)]
        if missing:
            raise PoisonMessage(f"missing headers: {', '.join(missing)}")
        if headers["ce-specversion"] != SPEC_VERSION:
            raise PoisonMessage(f"unsupported ce-specversion {headers['ce-specversion']!r}")
        for name in ("ce-datacontenttype", "content-type"):
            if headers.get(name, CONTENT_TYPE) != CONTENT_TYPE:
                raise PoisonMessage(f"unsupported {name} {headers[name]!r}")
        try:
            time = datetime.fromisoformat(headers["ce-time"].replace("Z", "+00:00"))
        except ValueError:
            raise PoisonMessage(f"ce-time {headers['ce-time']!r} is not RFC 3339") from None
        return cls(
            id=headers["ce-id"],
            source=headers["ce-source"],
            type=headers["ce-type"],
            time=time,
            subject=headers["ce-subject"],
            community_id=headers["ce-communityid"],
            data=data,
            traceparent=headers.get("traceparent", ""),
            tracestate=headers.get("tracestate", ""),
        )


_REQUIRED = (
    "ce-specversion",
    "ce-id",
    "ce-source",
    "ce-type",
    "ce-time",
    "ce-communityid",
    "ce-subject",
)


def decode(
    types: EventTypes, headers: Mapping[str, str] | None, data: bytes, subject: str
) -> tuple[Envelope, Message]:
    """One NATS message to its envelope and its protobuf event, or PoisonMessage.

    A message whose `ce-type` does not name the event of its subject is poison (decision
    0001): a consumer filtered on the subject would otherwise apply a body it never asked
    for.
    """
    envelope = Envelope.from_headers(headers, data)
    event = types.decode(envelope)
    if subject.rsplit(".", 1)[-1] != event.DESCRIPTOR.name:
        raise PoisonMessage(f"ce-type {envelope.type} does not match subject {subject}")
    return envelope, event


class EventTypes:
    """The protobuf classes a consumer understands, by `ce-type`."""

    def __init__(self, messages: Iterable[type[Message]]) -> None:
        self._by_type = {message.DESCRIPTOR.full_name: message for message in messages}

    def __contains__(self, event_type: str) -> bool:
        return event_type in self._by_type

    def names(self) -> list[str]:
        return sorted(self._by_type)

    def decode(self, envelope: Envelope) -> Message:
        message_class = self._by_type.get(envelope.type)
        if message_class is None:
            raise PoisonMessage(f"unknown event type {envelope.type!r}")
        return decode_body(message_class, envelope)


def decode_body(message_class: type[M], envelope: Envelope) -> M:
    message = message_class()
    try:
        message.ParseFromString(envelope.data)
    except DecodeError as error:
        raise PoisonMessage(f"undecodable {envelope.type} body: {error}") from None
    return message
