"""Page tokens for listings: where the last page ended, bound to the query that made it.

A token is opaque to clients. It carries the position (creation time and id of the last
item) and a digest of the filters, so it cannot be replayed against another query.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime


def encode(position: tuple[datetime, str], query: Sequence[str]) -> str:
    created, item_id = position
    payload = {"t": created.isoformat(), "i": item_id, "q": _digest(query)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode(token: str, query: Sequence[str]) -> tuple[datetime, str] | None:
    """The position in `token`, or None when it is malformed or from another query."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        if payload["q"] != _digest(query):
            return None
        return datetime.fromisoformat(payload["t"]), str(payload["i"])
    except (ValueError, KeyError, TypeError):
        return None


def _digest(query: Sequence[str]) -> str:
    return hashlib.sha256("\x00".join(query).encode()).hexdigest()[:16]
