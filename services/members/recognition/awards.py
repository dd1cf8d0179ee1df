"""Landing an award: the ledger entry, the member's activity and level, badges and their
events, all in the caller's transaction. Used by the API and by the consumers alike."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from services.members.recognition import badges
from services.members.recognition.events import RecognitionEvents
from services.members.recognition.points import Award
from services.members.recognition.store import Entry, LedgerRepository


@dataclass(frozen=True)
class Landed:
    entry: Entry
    points_total: int
    old_level: int
    new_level: int
    new_badges: list[str] = field(default_factory=list)


async def land(
    session: AsyncSession, award: Award, ledger: LedgerRepository | None = None
) -> Landed | None:
    """Record `award` once; None when its fact already landed. A consumer landing a batch
    hands in its one `ledger`, which reads each community's zone and levels once."""
    ledger = ledger or LedgerRepository(session)
    zone = await ledger.zone(award.community_id)
    entry = await ledger.append(award, award.created_at.astimezone(zone).date())
    if entry is None:
        return None
    activity = await ledger.add_points(
        award.community_id, award.user_id, award.amount, award.created_at
    )
    await RecognitionEvents(session).points_awarded(entry, activity.points_total)
    ladder = await ledger.ladder(award.community_id)
    level = ladder.level_for(activity.points_total)
    if level != activity.level:
        await ledger.set_level(award.community_id, award.user_id, level)
        await RecognitionEvents(session).level_changed(
            community_id=award.community_id,
            user_id=award.user_id,
            old_level=activity.level,
            new_level=level,
            privileges=ladder.privileges_at(level),
            points_total=activity.points_total,
            entry_id=entry.id,
            levels_version=ladder.version,
        )
    progress = await ledger.progress(
        award.community_id, award.user_id, award.streak_days, activity.points_total
    )
    earned: list[str] = []
    for code in badges.earned(progress):
        if await ledger.add_badge(
            award.community_id, award.user_id, code, entry.id, award.created_at
        ):
            earned.append(code)
            await RecognitionEvents(session).badge_awarded(entry, code)
    return Landed(entry, activity.points_total, activity.level, level, earned)
