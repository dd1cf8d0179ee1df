"""Dead letters: messages parked with the reason, counted, listed and replayed.

A dead letter keeps the original body and headers and adds why and where it came from.
Replaying republishes it to its original subject with a fresh `Nats-Msg-Id` (so JetStream's
duplicate window does not swallow it) and the original `ce-id` (so every consumer's inbox
still applies it at most once), then removes it from the dead-letter stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.kit.events.streams import DEADLETTER_PREFIX, DEADLETTER_STREAM

REASON = "Studyhall-Deadletter-Reason"
CONSUMER = "Studyhall-Deadletter-Consumer"
SUBJECT = "Studyhall-Deadletter-Subject"
STREAM = "Studyhall-Deadletter-Stream"
SEQUENCE = "Studyhall-Deadletter-Sequence"
TIME = "Studyhall-Deadletter-Time"
_OWN = {REASON, CONSUMER, SUBJECT, STREAM, SEQUENCE, TIME, "Nats-Msg-Id"}


def deadletter_subject(consumer: str) -> str:
    return f"{DEADLETTER_PREFIX}.{consumer}"


async def park(js: JetStreamContext, msg: Msg, *, consumer: str, reason: str) -> None:
    """Store `msg` in the dead-letter stream; the caller acks the original afterwards."""
    metadata = msg.metadata
    headers = {key: value for key, value in (msg.headers or {}).items() if key not in _OWN}
    headers.update(
        {
            REASON: reason[:1000],
            CONSUMER: consumer,
            SUBJECT: msg.subject,
            STREAM: metadata.stream,
            SEQUENCE: str(metadata.sequence.stream),
            TIME: datetime.now(UTC).isoformat(),
            # Parking the same message twice (a crash before the ack) keeps one copy.
            "Nats-Msg-Id": f"deadletter:{consumer}:{metadata.stream}:{metadata.sequence.stream}",
        }
    )
    await js.publish(deadletter_subject(consumer), msg.data, headers=headers)


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    consumer: str
    reason: str
    subject: str
    event_type: str
    event_id: str
    community_id: str
    parked_at: str
    headers: Mapping[str, str]
    data: bytes


async def list_dead_letters(js: JetStreamContext, *, limit: int = 1000) -> list[DeadLetter]:
    try:
        info = await js.stream_info(DEADLETTER_STREAM)
    except NotFoundError:
        return []  # no consumer has started yet, so none has parked anything
    letters: list[DeadLetter] = []
    sequence = info.state.first_seq
    while sequence and sequence <= info.state.last_seq and len(letters) < limit:
        letter = await _get(js, sequence)
        if letter is not None:
            letters.append(letter)
        sequence += 1
    return letters


async def replay(js: JetStreamContext, sequence: int) -> DeadLetter:
    letter = await _get(js, sequence)
    if letter is None:
        raise LookupError(f"no dead letter with sequence {sequence}")
    headers = {key: value for key, value in letter.headers.items() if key not in _OWN}
    headers["Nats-Msg-Id"] = str(uuid.uuid4())
    await js.publish(letter.subject, letter.data, headers=headers)
    await js.delete_msg(DEADLETTER_STREAM, sequence)
    return letter


async def _get(js: JetStreamContext, sequence: int) -> DeadLetter | None:
    try:
        raw = await js.get_msg(DEADLETTER_STREAM, sequence)
    except NotFoundError:
        return None
    headers = dict(raw.headers or {})
    return DeadLetter(
        sequence=sequence,
        consumer=headers.get(CONSUMER, ""),
        reason=headers.get(REASON, ""),
        subject=headers.get(SUBJECT, ""),
        event_type=headers.get("ce-type", ""),
        event_id=headers.get("ce-id", ""),
        community_id=headers.get("ce-communityid", ""),
        parked_at=headers.get(TIME, ""),
        headers=headers,
        data=raw.data or b"",
    )
