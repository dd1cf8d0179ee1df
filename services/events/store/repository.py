from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.domain import Activity, ActivityKind
from services.events.store.tables import activities
from services.kit.database import utc


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, activity: Activity) -> None:
        await self.session.execute(
            activities.insert().values(
                id=activity.id,
                community_id=activity.community_id,
                host_user_id=activity.host_user_id,
                kind=int(activity.kind),
                title=activity.title,
                description=activity.description,
                start_time=activity.start_time,
                end_time=activity.end_time,
                capacity=activity.capacity,
                location=activity.location,
                created_at=activity.created_at,
                version=activity.version,
            )
        )

    async def get(self, community_id: str, activity_id: str) -> Activity | None:
        row = (
            await self.session.execute(
                select(activities).where(
                    activities.c.community_id == community_id, activities.c.id == activity_id
                )
            )
        ).first()
        return _activity(row) if row else None


def _activity(row: Row[tuple[object, ...]]) -> Activity:
    return Activity(
        id=row.id,
        community_id=row.community_id,
        host_user_id=row.host_user_id,
        kind=ActivityKind(row.kind),
        title=row.title,
        description=row.description,
        start_time=utc(row.start_time),
        end_time=utc(row.end_time) if row.end_time is not None else None,
        capacity=row.capacity,
        location=row.location,
        created_at=utc(row.created_at),
        version=row.version,
    )
