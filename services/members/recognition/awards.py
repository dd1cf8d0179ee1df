"""Landing awards: ledger entries, members' totals and levels, badges and their events, all
in the caller's transaction. Used by the API (one award) and by the consumers (a batch).

A batch is landed a statement per table (the entries, the totals, the levels, the badge
counts, the badges, the events) and gives what its awards one by one would: each is walked
in order from its member's state before the batch, so every PointsAwarded carries the total
after its own award, a level crossed twice in a batch is told twice, and a badge is earned
by the award that reaches it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events.outbox import Staged
from services.members.recognition import badges, events
from services.members.recognition.points import Award
from services.members.recognition.store import Entry, LedgerRepository

Member = tuple[str, str]  # (community id, user id)


@dataclass(frozen=True)
class Landed:
    entry: Entry
    points_total: int
    old_level: int
    new_level: int
    new_badges: list[str] = field(default_factory=list)


async def land(session: AsyncSession, award: Award) -> Landed | None:
    """Record `award` once; None when its fact already landed."""
    [landed] = await land_many(session, [award])
    return landed


async def land_many(
    session: AsyncSession, awards: Sequence[Award], ledger: LedgerRepository | None = None
) -> list[Landed | None]:
    """Record each award once, in order; per award what landed, None when its fact already
    had (or an earlier award of the batch carried the same fact)."""
    ledger = ledger or LedgerRepository(session)
    dated = [
        (award, award.created_at.astimezone(await ledger.zone(award.community_id)).date())
        for award in awards
    ]
    ids = await ledger.append_many(dated)
    entries: list[Entry | None] = []
    for award, local_date in dated:
        entry_id = ids.pop((award.community_id, award.source_event_id), None)
        entries.append(None if entry_id is None else Entry(entry_id, award, local_date))
    landed = [entry for entry in entries if entry is not None]
    if not landed:
        return [None] * len(awards)

    deltas: dict[Member, tuple[int, datetime]] = {}
    for entry in landed:
        key = _member(entry)
        amount, latest = deltas.get(key, (0, entry.award.created_at))
        deltas[key] = (amount + entry.award.amount, max(latest, entry.award.created_at))
    after = await ledger.add_points_many(deltas)
    members = set(deltas)
    counts_after = await ledger.reason_counts(members)
    held = await ledger.badges_held(members)

    # Each member's state before the batch, then walked forward award by award.
    totals = {key: after[key].points_total - deltas[key][0] for key in members}
    levels = {key: after[key].level for key in members}
    counts = {key: Counter(counts_after.get(key, {})) for key in members}
    for entry in landed:
        counts[_member(entry)][entry.award.reason] -= 1
    walked: list[tuple[Entry, int, int, int, list[str], list[Staged]]] = []
    moved: dict[Member, int] = {}
    earned: list[tuple[str, str, str, int, datetime]] = []
    for entry in landed:
        award, key = entry.award, _member(entry)
        totals[key] += award.amount
        counts[key][award.reason] += 1
        total, old_level = totals[key], levels[key]
        staged = [events.points_awarded(entry, total)]
        ladder = await ledger.ladder(award.community_id)
        level = ladder.level_for(total)
        if level != old_level:
            levels[key] = moved[key] = level
            staged.append(
                events.level_changed(
                    community_id=award.community_id,
                    user_id=award.user_id,
                    old_level=old_level,
                    new_level=level,
                    privileges=ladder.privileges_at(level),
                    points_total=total,
                    entry_id=entry.id,
                    levels_version=ladder.version,
                )
            )
        progress = badges.Progress(
            posts=counts[key]["post_created"],
            checkins=counts[key]["checked_in"],
            kudos_received=counts[key]["kudos"],
            points_total=total,
            streak_days=award.streak_days,
            paths=counts[key]["path_completed"],
            challenges=counts[key]["challenge_completed"],
        )
        codes = []
        for code in badges.earned(progress):
            badge = (*key, code)
            if badge not in held:
                held.add(badge)
                codes.append(code)
                earned.append((*badge, entry.id, award.created_at))
        walked.append((entry, total, old_level, level, codes, staged))
    await ledger.set_levels(moved)
    # A badge another transaction gave meanwhile is theirs: no second BadgeAwarded.
    new = await ledger.add_badges(earned)

    results: dict[int, Landed] = {}
    staged_all: list[Staged] = []
    for entry, total, old_level, level, codes, staged in walked:
        won = [code for code in codes if (*_member(entry), code) in new]
        staged_all += staged + [events.badge_awarded(entry, code) for code in won]
        results[entry.id] = Landed(entry, total, old_level, level, won)
    await events.RecognitionEvents(session).stage(staged_all)
    return [None if entry is None else results[entry.id] for entry in entries]


def _member(entry: Entry) -> Member:
    return (entry.award.community_id, entry.award.user_id)
