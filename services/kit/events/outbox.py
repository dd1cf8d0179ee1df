"""The transactional outbox: an event is a row written in the same transaction as the state
change it describes, so either both happen or neither does. The relay publishes it later."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from opentelemetry import propagate
from opentelemetry.context import Context
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events.envelope import event_subject, new_event_id


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        # Integer on SQLite so the column is the rowid and increases with each insert.
        Column(
            "seq",
            BigInteger().with_variant(Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("nats_subject", String(300), nullable=False),
        Column("event_type", String(200), nullable=False),
        Column("community_id", String(36), nullable=False),
        Column("ce_subject", String(300), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        # The trace of the request that caused the event, continued by the relay.
        Column("traceparent", String(64), nullable=False, default=""),
        Column("tracestate", String(512), nullable=False, default=""),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_pending", "published_at", "seq"),
    )


@dataclass(frozen=True)
class Staged:
    """An event to stage: what it says, which community it belongs to, what it is about."""

    event: Message
    community_id: str
    subject: str  # e.g. "communities/<id>/members/<user>"
    # Empty: a fresh id. A caller that may stage the same fact twice (a retried sweep) derives
    # it from the fact, so the stream's duplicate window and the inboxes drop the repeat.
    event_id: str = ""
    # The trace the event continues; None: the caller's current context. A writer that
    # commits several callers' changes together passes each caller's own.
    trace: Context | None = None


class Outbox:
    """Adds events to a service's outbox inside the caller's transaction."""

    def __init__(self, table: Table, service: str) -> None:
        self.table = table
        self.service = service
        self.source = f"/studyhall/{service}"
        # Built once: constructing a statement per event costs more than executing it.
        self._insert = table.insert()

    async def add(
        self,
        session: AsyncSession,
        event: Message,
        *,
        community_id: str,
        subject: str,
        trace: Context | None = None,
    ) -> str:
        """Stage `event` about `subject` (e.g. "communities/<id>/members/<user>")."""
        [event_id] = await self.add_many(
            session, [Staged(event, community_id, subject, trace=trace)]
        )
        return event_id

    async def add_many(self, session: AsyncSession, staged: Sequence[Staged]) -> list[str]:
        """Stage several events with one statement; returns their ids in order."""
        current: dict[str, str] = {}
        propagate.inject(current)
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        for item in staged:
            carrier = current if item.trace is None else _carrier(item.trace)
            rows.append(
                {
                    "event_id": item.event_id or new_event_id(),
                    "nats_subject": event_subject(
                        self.service, item.community_id, item.event.DESCRIPTOR.name
                    ),
                    "event_type": item.event.DESCRIPTOR.full_name,
                    "community_id": item.community_id,
                    "ce_subject": item.subject,
                    "payload": item.event.SerializeToString(),
                    "traceparent": carrier.get("traceparent", ""),
                    "tracestate": carrier.get("tracestate", ""),
                    "created_at": now,
                }
            )
        if rows:
            await session.execute(self._insert, rows)
        return [row["event_id"] for row in rows]


def _carrier(trace: Context) -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace)
    return carrier
