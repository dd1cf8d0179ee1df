"""The facts about learning paths, staged in content's outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.paths.domain import Enrollment, Path
from services.content.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events


class PathEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def created(self, path: Path) -> None:
        await self._add(
            path.community_id,
            path.id,
            events.PathCreated(
                community_id=path.community_id,
                path_id=path.id,
                created_by_user_id=path.created_by,
                step_count=len(path.steps),
                required_product_id=path.required_product_id,
                create_time=timestamp(path.created_at),
                version=path.version,
            ),
        )

    async def updated(self, path: Path, by: str, changed: Sequence[str]) -> None:
        assert path.updated_at is not None
        await self._add(
            path.community_id,
            path.id,
            events.PathUpdated(
                community_id=path.community_id,
                path_id=path.id,
                updated_by_user_id=by,
                changed_fields=list(changed),
                step_count=len(path.steps),
                required_product_id=path.required_product_id,
                update_time=timestamp(path.updated_at),
                version=path.version,
            ),
        )

    async def enrolled(self, enrollment: Enrollment) -> None:
        await self._add(
            enrollment.community_id,
            enrollment.path_id,
            events.PathEnrolled(
                community_id=enrollment.community_id,
                path_id=enrollment.path_id,
                user_id=enrollment.user_id,
                enroll_time=timestamp(enrollment.enrolled_at),
            ),
        )

    async def step_completed(self, enrollment: Enrollment, path: Path, step_id: str) -> None:
        await self._add(
            enrollment.community_id,
            enrollment.path_id,
            events.PathStepCompleted(
                community_id=enrollment.community_id,
                path_id=enrollment.path_id,
                step_id=step_id,
                user_id=enrollment.user_id,
                completed_steps=len(enrollment.done(path)),
                total_steps=len(path.steps),
                complete_time=timestamp(enrollment.last_progress_at),
            ),
        )

    async def completed(self, enrollment: Enrollment) -> None:
        assert enrollment.completed_at is not None
        await self._add(
            enrollment.community_id,
            enrollment.path_id,
            events.PathCompleted(
                community_id=enrollment.community_id,
                path_id=enrollment.path_id,
                user_id=enrollment.user_id,
                complete_time=timestamp(enrollment.completed_at),
            ),
        )

    async def recommended(
        self,
        *,
        recommendation_id: str,
        path: Path,
        segment_id: str,
        by: str,
        member_count: int,
        now: datetime,
    ) -> None:
        await self._add(
            path.community_id,
            path.id,
            events.PathRecommended(
                community_id=path.community_id,
                path_id=path.id,
                recommendation_id=recommendation_id,
                segment_id=segment_id,
                recommended_by_user_id=by,
                member_count=member_count,
                recommend_time=timestamp(now),
            ),
        )

    async def _add(self, community_id: str, path_id: str, event: Message) -> None:
        await OUTBOX.add(
            self.session,
            event,
            community_id=community_id,
            subject=f"communities/{community_id}/paths/{path_id}",
        )
