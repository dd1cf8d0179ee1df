"""CloudEvents 1.0 in binary mode over NATS: attributes in headers, protobuf in the body.

A consumer that knows only nats-py, the CloudEvents spec and proto/ can read every event:
`ce-type` is the full protobuf message name of the body. The decoding itself lives in the
consumer kit's faststream-free module (clients/python/studyhall_consumer/cloudevents.py), so
the services' consumers and the kit's subscribers read every message the same way.
"""

from __future__ import annotations

import re
import uuid

from studyhall_consumer.cloudevents import (
    CONTENT_TYPE,
    SPEC_VERSION,
    Envelope,
    EventTypes,
    PoisonMessage,
    decode,
)

__all__ = [
    "CONTENT_TYPE",
    "SPEC_VERSION",
    "SUBJECT_PREFIX",
    "Envelope",
    "EventTypes",
    "PoisonMessage",
    "decode",
    "event_filter",
    "event_subject",
    "new_event_id",
    "stream_subjects",
]

SUBJECT_PREFIX = "studyhall"
# Subject tokens may not contain '.', '*', '>' or whitespace.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


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


def new_event_id() -> str:
    return str(uuid.uuid4())
