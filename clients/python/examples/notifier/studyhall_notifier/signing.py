"""The webhook signature: HMAC-SHA256 with a shared secret over `<timestamp>.<body>`.

Headers of every delivery:
- `Studyhall-Timestamp`: Unix seconds when this attempt was signed.
- `Studyhall-Signature`: `v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
- `Studyhall-Event-Id`: the event's CloudEvents `ce-id` (the same on every retry and
  redelivery: a receiver deduplicates by it).
- `Studyhall-Event-Type`: the event's `ce-type`.

A receiver recomputes the HMAC over the raw body it received, compares in constant time,
and refuses a timestamp older than its tolerance (5 minutes here), so a captured request
cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

TIMESTAMP = "Studyhall-Timestamp"
SIGNATURE = "Studyhall-Signature"
EVENT_ID = "Studyhall-Event-Id"
EVENT_TYPE = "Studyhall-Event-Type"
VERSION = "v1"
TOLERANCE_SECONDS = 300


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{VERSION}={digest.hexdigest()}"


def signed_headers(
    secret: bytes, timestamp: int, body: bytes, *, event_id: str, event_type: str
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        TIMESTAMP: str(timestamp),
        SIGNATURE: signature(secret, timestamp, body),
        EVENT_ID: event_id,
        EVENT_TYPE: event_type,
    }


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        timestamp = int(headers[TIMESTAMP])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(headers.get(SIGNATURE, ""), signature(secret, timestamp, body))
