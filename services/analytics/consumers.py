"""The durable consumers of analytics: one per stream, each applying the facts of
services/analytics/facts.py in batches (one transaction, a statement or two per table)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.facts import FACTS, effects_of, source_service
from services.analytics.store import rollups
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope

# Every stream analytics reads, in the order a rebuild replays them.
STREAMS = ("members", "content", "events", "billing")
BATCH = 5_000


async def apply_facts(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
    await rollups.write(session, effects_of(batch))


def subscription(service: str) -> Subscription:
    return Subscription(
        name=f"analytics-{service}",
        source_service=service,
        event_types=tuple(kind for kind in FACTS if source_service(kind) == service),
        apply=apply_facts,
        # Effects merge in memory (facts.py): a batch of 5,000 costs about the statements
        # of one of 256, so a backlog drains faster.
        batch_size=BATCH,
    )


SUBSCRIPTIONS = tuple(subscription(service) for service in STREAMS)
MEMBERS = SUBSCRIPTIONS[0]
