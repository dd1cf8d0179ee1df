"""The consumer's inbox: (consumer, event id) written in the same transaction as the effect,
so a redelivered event finds its id and changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import insert_for


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )


async def claim(
    session: AsyncSession, table: Table, consumer: str, events: Sequence[tuple[str, str]]
) -> set[str]:
    """Record (event id, event type) pairs as processed by `consumer` in the session's
    transaction, and return the ids it had not recorded before: the events to apply.

    One INSERT ... ON CONFLICT DO NOTHING RETURNING instead of a look-up and an insert: the
    primary key decides, so no plan depends on the table's statistics (a look-up by an IN
    list planned while the inbox was small scanned the whole consumer's inbox once it had
    grown, half a second a batch at 150,000 rows), and a replica holding the same event in
    an open transaction makes this one wait for its outcome instead of failing on the key.
    Ids go in sorted so that two replicas claiming overlapping batches lock rows in the same
    order and never deadlock."""
    if not events:
        return set()
    now = datetime.now(UTC)
    dialect = session.get_bind().dialect.name
    insert: Any = insert_for(dialect)
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(table.c.event_id)
    )
    rows = await session.execute(
        statement,
        [
            {
                "consumer": consumer,
                "event_id": event_id,
                "event_type": event_type,
                "processed_at": now,
            }
            for event_id, event_type in sorted(dict(events).items())
        ],
    )
    return set(rows.scalars())
