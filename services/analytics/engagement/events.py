"""ChurnRiskChanged, staged in analytics' outbox in the sweep's transaction."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.engagement.domain import Change
from services.analytics.store.outbox import OUTBOX
from services.kit.events.outbox import Staged
from services.kit.timestamps import timestamp
from studyhall.analytics.v1 import analytics_events_pb2 as events


async def risks_changed(
    session: AsyncSession, community_id: str, found: list[Change], on: date, now: datetime
) -> None:
    await OUTBOX.add_many(
        session,
        [
            Staged(
                events.ChurnRiskChanged(
                    community_id=community_id,
                    user_id=change.engagement.user_id,
                    risk=change.now,  # type: ignore[arg-type]
                    previous_risk=change.before,  # type: ignore[arg-type]
                    score=change.engagement.score,
                    previous_score=change.engagement.previous_score,
                    swept_date=on.isoformat(),
                    version=change.version,
                    change_time=timestamp(now),
                ),
                community_id,
                f"communities/{community_id}/members/{change.engagement.user_id}",
            )
            for change in found
        ],
    )
