"""Learning paths, enrollments and recommendations in the content database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.paths.domain import Enrollment, Path, Step
from services.content.store.tables import (
    learning_paths,
    path_enrollments,
    path_recommendations,
    path_recommended_members,
)
from services.kit.database import utc
from services.kit.paging import Position
from services.kit.versioned import save_versioned

# A stuck report reads at most this many idle enrollments of a path (longest idle first).
STUCK_MAX = 10_000


class PathRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, path: Path) -> None:
        """Insert a new path (version 1) or replace the stored one a version older."""
        await save_versioned(self.session, learning_paths, [_path_values(path)], ["id"])

    async def get(
        self, community_id: str, path_id: str, *, for_update: bool = False
    ) -> Path | None:
        query = select(learning_paths).where(
            learning_paths.c.community_id == community_id, learning_paths.c.id == path_id
        )
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _path(row) if row else None

    async def by_id(self, community_id: str, path_ids: Sequence[str]) -> dict[str, Path]:
        if not path_ids:
            return {}
        rows = await self.session.execute(
            select(learning_paths).where(
                learning_paths.c.community_id == community_id,
                learning_paths.c.id.in_(list(path_ids)),
            )
        )
        return {row.id: _path(row) for row in rows}

    async def prerequisite_graph(self, community_id: str) -> dict[str, list[str]]:
        """Every path of the community and the paths it needs first."""
        rows = await self.session.execute(
            select(learning_paths.c.id, learning_paths.c.prerequisites).where(
                learning_paths.c.community_id == community_id
            )
        )
        return {row.id: list(row.prerequisites or []) for row in rows}

    async def oldest_first(
        self,
        community_id: str,
        after: Position | None,
        limit: int,
        *,
        recommended_to: str | None = None,
    ) -> list[Path]:
        """The community's paths; with `recommended_to`, those recommended to that member."""
        query = select(learning_paths).where(learning_paths.c.community_id == community_id)
        if recommended_to is not None:
            query = query.where(
                exists().where(
                    path_recommended_members.c.community_id == community_id,
                    path_recommended_members.c.user_id == recommended_to,
                    path_recommended_members.c.path_id == learning_paths.c.id,
                )
            )
        if after is not None:
            created, path_id = after
            query = query.where(
                or_(
                    learning_paths.c.created_at > created,
                    and_(learning_paths.c.created_at == created, learning_paths.c.id > path_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(learning_paths.c.created_at, learning_paths.c.id).limit(limit)
        )
        return [_path(row) for row in rows]


class EnrollmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, enrollment: Enrollment) -> None:
        await save_versioned(
            self.session, path_enrollments, [_enrollment_values(enrollment)], ["path_id", "user_id"]
        )

    async def get(self, community_id: str, path_id: str, user_id: str) -> Enrollment | None:
        row = (
            await self.session.execute(
                select(path_enrollments).where(
                    path_enrollments.c.community_id == community_id,
                    path_enrollments.c.path_id == path_id,
                    path_enrollments.c.user_id == user_id,
                )
            )
        ).first()
        return _enrollment(row) if row else None

    async def completed_paths(
        self, community_id: str, user_id: str, path_ids: Sequence[str]
    ) -> set[str]:
        if not path_ids:
            return set()
        rows = await self.session.execute(
            select(path_enrollments.c.path_id).where(
                path_enrollments.c.community_id == community_id,
                path_enrollments.c.user_id == user_id,
                path_enrollments.c.path_id.in_(list(path_ids)),
                path_enrollments.c.completed_at.is_not(None),
            )
        )
        return {row.path_id for row in rows}

    async def idle(self, community_id: str, path_id: str, before: datetime) -> list[Enrollment]:
        """Enrollments of the path not completed and with no progress since `before`,
        longest idle first."""
        rows = await self.session.execute(
            select(path_enrollments)
            .where(
                path_enrollments.c.community_id == community_id,
                path_enrollments.c.path_id == path_id,
                path_enrollments.c.completed_at.is_(None),
                path_enrollments.c.last_progress_at < before,
            )
            .order_by(path_enrollments.c.last_progress_at, path_enrollments.c.user_id)
            .limit(STUCK_MAX)
        )
        return [_enrollment(row) for row in rows]


class RecommendationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        recommendation_id: str,
        community_id: str,
        path_id: str,
        segment_id: str,
        by: str,
        now: datetime,
        user_ids: Sequence[str],
    ) -> None:
        await self.session.execute(
            path_recommendations.insert().values(
                id=recommendation_id,
                community_id=community_id,
                path_id=path_id,
                segment_id=segment_id,
                recommended_by=by,
                recommended_at=now,
                member_count=len(user_ids),
            )
        )
        rows = [
            {
                "recommendation_id": recommendation_id,
                "user_id": user_id,
                "community_id": community_id,
                "path_id": path_id,
                "recommended_at": now,
            }
            for user_id in user_ids
        ]
        for start in range(0, len(rows), 1000):
            await self.session.execute(
                path_recommended_members.insert(), rows[start : start + 1000]
            )


def _path_values(path: Path) -> dict[str, Any]:
    return {
        "id": path.id,
        "community_id": path.community_id,
        "title": path.title,
        "description": path.description,
        "steps": [step.to_json() for step in path.steps],
        "prerequisites": list(path.prerequisites),
        "required_product_id": path.required_product_id,
        "created_by": path.created_by,
        "created_at": path.created_at,
        "updated_at": path.updated_at,
        "version": path.version,
    }


def _path(row: Row[Any]) -> Path:
    return Path(
        id=row.id,
        community_id=row.community_id,
        title=row.title,
        description=row.description,
        steps=tuple(Step.from_json(step) for step in row.steps or []),
        prerequisites=tuple(row.prerequisites or []),
        required_product_id=row.required_product_id,
        created_by=row.created_by,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at) if row.updated_at else None,
        version=int(row.version),
    )


def _enrollment_values(enrollment: Enrollment) -> dict[str, Any]:
    return {
        "path_id": enrollment.path_id,
        "user_id": enrollment.user_id,
        "community_id": enrollment.community_id,
        "completed_steps": list(enrollment.completed_steps),
        "enrolled_at": enrollment.enrolled_at,
        "last_progress_at": enrollment.last_progress_at,
        "completed_at": enrollment.completed_at,
        "version": enrollment.version,
    }


def _enrollment(row: Row[Any]) -> Enrollment:
    return Enrollment(
        path_id=row.path_id,
        user_id=row.user_id,
        community_id=row.community_id,
        enrolled_at=utc(row.enrolled_at),
        last_progress_at=utc(row.last_progress_at),
        completed_steps=tuple(row.completed_steps or []),
        completed_at=utc(row.completed_at) if row.completed_at else None,
        version=int(row.version),
    )
