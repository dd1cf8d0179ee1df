"""What engagement reads (members' active days, who counts) and what the churn sweep keeps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.engagement.domain import NONE, SEVERITY, WEIGHTS, Change
from services.analytics.store.tables import churn_risks, community_stats, member_days, member_states
from services.kit.database import utc
from services.kit.projection import upsert


class EngagementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def members(self, community_id: str) -> list[str]:
        """Who counts in the community now."""
        rows = await self.session.scalars(
            select(member_states.c.user_id).where(
                member_states.c.community_id == community_id, member_states.c.active.is_(True)
            )
        )
        return list(rows)

    async def active_days(
        self, community_id: str, first: date, last: date
    ) -> dict[str, list[tuple[date, float]]]:
        """Each member's active days in [first, last] and what each was worth (the weights
        of domain.worth, summed by the database: a sweep reads one number per row)."""
        value = sum(
            (member_days.c[kind] * weight for kind, weight in WEIGHTS.items()),
            literal(0.0),
        )
        rows = await self.session.execute(
            select(member_days.c.user_id, member_days.c.day, value).where(
                member_days.c.community_id == community_id,
                member_days.c.day >= first,
                member_days.c.day <= last,
            )
        )
        days: dict[str, list[tuple[date, float]]] = {}
        for user_id, day, worth in rows:
            days.setdefault(user_id, []).append((day, float(worth)))
        return days

    async def archived(self, community_id: str) -> bool:
        at = await self.session.scalar(
            select(community_stats.c.archived_at).where(
                community_stats.c.community_id == community_id
            )
        )
        return at is not None

    async def known_risks(self, community_id: str) -> dict[str, tuple[int, int]]:
        """user -> (risk, version), as the last sweep left them."""
        rows = await self.session.execute(
            select(churn_risks.c.user_id, churn_risks.c.risk, churn_risks.c.version).where(
                churn_risks.c.community_id == community_id
            )
        )
        return {user: (int(risk), int(version)) for user, risk, version in rows}

    async def record(
        self, community_id: str, found: Sequence[Change], on: date, now: datetime
    ) -> None:
        rows: list[dict[str, Any]] = [
            {
                "community_id": community_id,
                "user_id": change.engagement.user_id,
                "risk": int(change.now),
                "score": change.engagement.score,
                "previous_score": change.engagement.previous_score,
                "last_active_on": change.engagement.last_active,
                "since": now,
                "swept_on": on,
                "version": change.version,
            }
            for change in found
        ]
        await upsert(self.session, churn_risks, rows, ["community_id", "user_id"])

    async def forget(self, community_id: str, user_ids: Sequence[str]) -> None:
        """Members who no longer count are judged no more."""
        if user_ids:
            await self.session.execute(
                delete(churn_risks).where(
                    churn_risks.c.community_id == community_id,
                    churn_risks.c.user_id.in_(list(user_ids)),
                )
            )

    async def at_risk(self, community_id: str, top: int) -> list[Any]:
        rows = await self.session.execute(
            select(churn_risks).where(
                churn_risks.c.community_id == community_id, churn_risks.c.risk != int(NONE)
            )
        )
        found = sorted(rows, key=lambda r: (-SEVERITY.get(r.risk, 0), -r.previous_score, r.user_id))
        return found[:top]

    async def count_at_risk(self, community_id: str) -> int:
        found = await self.session.scalar(
            select(func.count()).where(
                churn_risks.c.community_id == community_id, churn_risks.c.risk != int(NONE)
            )
        )
        return int(found or 0)

    async def swept_on(self, community_id: str) -> date | None:
        return await self.session.scalar(
            select(churn_risks.c.swept_on)
            .where(churn_risks.c.community_id == community_id)
            .order_by(churn_risks.c.swept_on.desc())
            .limit(1)
        )


def since(row: Any) -> datetime:
    return utc(row.since)
