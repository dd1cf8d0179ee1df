"""CloudEvents 1.0 in binary mode over NATS: attributes in headers, protobuf in the body.

A consumer that knows only nats-py, the CloudEvents spec and proto/ can read every event:
`ce-type` is the full protobuf message name of the body.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import DecodeError, Message

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"
SUBJECT_PREFIX = "studyhall"
# Subject tokens may not contain '.', '*', '>' or whitespace.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


class PoisonMessage(Exception):
    """A message no retry can fix: missing headers, unknown type, undecodable body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def event_subject(service: str, community_id: str, event_name: str) -> str:
    """`studyhall.<service>.<community_id>.<EventName>`.

    One community of one service is `studyhall.members.<id>.>`, one event type in every
    community is `studyhall.members.*.MemberJoined`.
    """
    for token in (service, community_id, event_name):
        if not _TOKEN.fullmatch(token):
            raise ValueError(f"{token!r} cannot be a subject token")
    return f"{SUBJECT_PREFIX}.{service}.{community_id}.{event_name}"


def event_filter(service: str, event_name: str) -> str:
    """The subjects of one event type in every community."""
    return f"{SUBJECT_PREFIX}.{service}.*.{event_name}"


def stream_subjects(service: str) -> str:
    return f"{SUBJECT_PREFIX}.{service}.>"


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


def new_event_id() -> str:
    return str(uuid.uuid4())


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
        message = message_class()
        try:
            message.ParseFromString(envelope.data)
        except DecodeError as error:
            raise PoisonMessage(f"undecodable {envelope.type} body: {error}") from None
        return message
