"""The facts of recognition, staged in the members outbox in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events.outbox import Staged
from services.kit.timestamps import timestamp
from services.members.recognition.levels import Ladder
from services.members.recognition.store import Entry
from services.members.store.outbox import OUTBOX
from studyhall.members.v1 import recognition_events_pb2 as events
from studyhall.members.v1 import recognition_service_pb2 as service


def _subject(community_id: str, user_id: str) -> str:
    return f"communities/{community_id}/members/{user_id}/recognition"


def points_awarded(entry: Entry, points_total: int) -> Staged:
    award = entry.award
    return Staged(
        events.PointsAwarded(
            entry_id=entry.id,
            community_id=award.community_id,
            user_id=award.user_id,
            amount=award.amount,
            reason=award.reason,
            source_event_id=award.source_event_id,
            points_total=points_total,
        ),
        award.community_id,
        _subject(award.community_id, award.user_id),
    )


def level_changed(
    *,
    community_id: str,
    user_id: str,
    old_level: int,
    new_level: int,
    privileges: list[str],
    points_total: int,
    entry_id: int,
    levels_version: int,
) -> Staged:
    return Staged(
        events.LevelChanged(
            community_id=community_id,
            user_id=user_id,
            old_level=old_level,
            new_level=new_level,
            privileges=privileges,
            points_total=points_total,
            entry_id=entry_id,
            levels_version=levels_version,
        ),
        community_id,
        _subject(community_id, user_id),
    )


def badge_awarded(entry: Entry, code: str) -> Staged:
    return Staged(
        events.BadgeAwarded(
            community_id=entry.award.community_id,
            user_id=entry.award.user_id,
            code=code,
            entry_id=entry.id,
        ),
        entry.award.community_id,
        _subject(entry.award.community_id, entry.award.user_id),
    )


class RecognitionEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def stage(self, staged: list[Staged]) -> None:
        """Stage events built above, in their order, with one statement."""
        if staged:
            await OUTBOX.add_many(self.session, staged)

    async def levels_changed(self, community_id: str, ladder: Ladder, version: int) -> None:
        """Every level in force after a SetLevels, so a service can tell what a level
        unlocks without following each member's LevelChanged."""
        await OUTBOX.add(
            self.session,
            events.LevelsChanged(
                community_id=community_id,
                levels=[
                    service.Level(
                        level=level.number,
                        min_points=level.min_points,
                        privileges=list(level.privileges),
                    )
                    for level in ladder.levels
                ],
                version=version,
                change_time=timestamp(datetime.now(UTC)),
            ),
            community_id=community_id,
            subject=f"communities/{community_id}/levels",
        )
