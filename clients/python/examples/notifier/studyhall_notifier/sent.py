"""The events already delivered, by `ce-id`: a redelivered event is not sent twice.

SQLite (the standard library's sqlite3): a file survives a restart of the notifier, so a
redelivery after a crash still finds what was sent. A row is written only after the
endpoint took the webhook; a crash between the two sends it again once (at least once), and
the receiver drops it by its `Studyhall-Event-Id`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class SentLog:
    def __init__(self, path: Path | str = ":memory:") -> None:
        self._db = sqlite3.connect(str(path))
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sent (event_id TEXT PRIMARY KEY, sent_at REAL NOT NULL)"
        )
        self._db.commit()

    def __contains__(self, event_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM sent WHERE event_id = ?", (event_id,)).fetchone()
        return row is not None

    def record(self, event_id: str, sent_at: float) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO sent (event_id, sent_at) VALUES (?, ?)", (event_id, sent_at)
        )
        self._db.commit()

    def forget_before(self, cutoff: float) -> None:
        """Rows older than any redelivery can be dropped (JetStream redelivers within the
        consumer's ack wait and retries; a day is plenty)."""
        self._db.execute("DELETE FROM sent WHERE sent_at < ?", (cutoff,))
        self._db.commit()

    def close(self) -> None:
        self._db.close()
