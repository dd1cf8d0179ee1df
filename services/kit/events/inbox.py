"""The consumer's inbox: (consumer, event id) written in the same transaction as the effect,
so a redelivered event finds its id and changes nothing."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )


async def already_processed(
    session: AsyncSession, table: Table, consumer: str, event_ids: Collection[str]
) -> set[str]:
    if not event_ids:
        return set()
    rows = await session.execute(
        select(table.c.event_id).where(
            table.c.consumer == consumer, table.c.event_id.in_(event_ids)
        )
    )
    return {row.event_id for row in rows}


async def record(
    session: AsyncSession, table: Table, consumer: str, events: list[tuple[str, str]]
) -> None:
    """Record (event id, event type) pairs as processed by `consumer`."""
    if events:
        now = datetime.now(UTC)
        await session.execute(
            table.insert(),
            [
                {
                    "consumer": consumer,
                    "event_id": event_id,
                    "event_type": event_type,
                    "processed_at": now,
                }
                for event_id, event_type in events
            ],
        )
