"""The sandbox provider's own SQLite file: payment intents, refunds, and the webhook events
it owes billing, each until delivered. Plain sqlite3: the sandbox is a small test double
with one writer (its event loop), and every statement is a few microseconds."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS payment_intents (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    decline_code TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    settle_at REAL
);
CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE NOT NULL,
    payment_intent TEXT NOT NULL,
    amount INTEGER NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created REAL NOT NULL,
    settle_at REAL
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    delivered_at REAL
);
"""


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class SandboxStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def payment_by_key(self, key: str) -> Any:
        return self.db.execute(
            "SELECT * FROM payment_intents WHERE idempotency_key = ?", (key,)
        ).fetchone()

    def payment(self, payment_id: str) -> Any:
        return self.db.execute(
            "SELECT * FROM payment_intents WHERE id = ?", (payment_id,)
        ).fetchone()

    def add_payment(self, values: dict[str, Any]) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        self.db.execute(
            f"INSERT INTO payment_intents ({columns}) VALUES ({marks})", list(values.values())
        )

    def set_payment(self, payment_id: str, **values: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in values)
        self.db.execute(
            f"UPDATE payment_intents SET {sets} WHERE id = ?", [*values.values(), payment_id]
        )

    def refund_by_key(self, key: str) -> Any:
        return self.db.execute("SELECT * FROM refunds WHERE idempotency_key = ?", (key,)).fetchone()

    def refunded(self, payment_id: str) -> int:
        row = self.db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE payment_intent = ? "
            "AND status != 'failed'",
            (payment_id,),
        ).fetchone()
        return int(row[0])

    def add_refund(self, values: dict[str, Any]) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        self.db.execute(f"INSERT INTO refunds ({columns}) VALUES ({marks})", list(values.values()))

    def due_payments(self, now: float) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM payment_intents WHERE status = 'processing' AND settle_at <= ?", (now,)
        ).fetchall()

    def due_refunds(self, now: float) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM refunds WHERE status = 'pending' AND settle_at <= ?", (now,)
        ).fetchall()

    def settle_refund(self, refund_id: str, status: str) -> None:
        self.db.execute("UPDATE refunds SET status = ? WHERE id = ?", (status, refund_id))

    def add_event(self, kind: str, obj: dict[str, Any]) -> str:
        event_id = new_id("evt")
        now = time.time()
        payload = {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created": int(now),
            "data": {"object": obj},
        }
        self.db.execute(
            "INSERT INTO events (id, type, payload, created, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (event_id, kind, json.dumps(payload), now, now),
        )
        return event_id

    def due_events(self, now: float, limit: int) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM events WHERE delivered_at IS NULL AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at LIMIT ?",
            (now, limit),
        ).fetchall()

    def delivered(self, event_id: str, now: float) -> None:
        self.db.execute(
            "UPDATE events SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?",
            (now, event_id),
        )

    def failed(self, event_id: str, next_attempt_at: float) -> None:
        self.db.execute(
            "UPDATE events SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
            (next_attempt_at, event_id),
        )

    def events(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM events ORDER BY created").fetchall()
