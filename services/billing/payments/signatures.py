"""Webhook signatures in the payment provider's scheme (Stripe's): the header
`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>">`, keyed by the
endpoint's shared secret. The timestamp is signed too, so an old delivery cannot be
replayed later with a fresh time; a receiver refuses times outside its tolerance."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Stripe-Signature"


class BadSignature(ValueError):
    """Why a delivery is refused; the message names the header or the timestamp."""


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The header value for `payload` sent at `timestamp`."""
    return f"t={timestamp},v1={_digest(payload, secret, timestamp)}"


def verify(payload: bytes, header: str, secret: str, now: float, tolerance: float) -> int:
    """The signed timestamp, when `header` signs `payload` with `secret` within `tolerance`
    seconds of `now`; else BadSignature. Several v1 values may be present (secret rotation):
    one match is enough."""
    if not header:
        raise BadSignature(f"{HEADER} header is missing")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                raise BadSignature(f"{HEADER} timestamp t={value!r} is not a unix time")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise BadSignature(f"{HEADER} must carry t=<unix time> and v1=<signature>")
    if abs(now - timestamp) > tolerance:
        raise BadSignature(
            f"{HEADER} timestamp {timestamp} is outside the {tolerance:g} s tolerance "
            "(a replayed or delayed delivery)"
        )
    expected = _digest(payload, secret, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise BadSignature(f"{HEADER} v1 signature does not match the payload")
    return timestamp


def _digest(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
