"""Paid content: who may read a paid post or follow a paid path. Rules only, no I/O."""

from __future__ import annotations

from datetime import datetime

PRODUCT_ID_MAX = 200


def active(start_at: datetime | None, end_at: datetime | None, now: datetime) -> bool:
    """An entitlement gives access from its start until its end (none: for good); the end
    is authoritative, so access stops then whether or not a revocation ever arrives."""
    return (start_at is None or start_at <= now) and (end_at is None or now < end_at)
