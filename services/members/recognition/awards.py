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
    steps: list[_Step] = []
    moved: dict[Member, int] = {}
    earned: list[tuple[str, str, str, int, datetime]] = []
    for entry in landed:
        award, key = entry.award, _member(entry)
        totals[key] += award.amount
        counts[key][award.reason] += 1
        step = _Step(entry, totals[key], levels[key], levels[key])
        step.staged.append(events.points_awarded(entry, step.total))
        ladder = await ledger.ladder(award.community_id)
        step.new_level = ladder.level_for(step.total)
        if step.new_level != step.old_level:
            levels[key] = moved[key] = step.new_level
            step.staged.append(
                events.level_changed(
                    community_id=award.community_id,
                    user_id=award.user_id,
                    old_level=step.old_level,
                    new_level=step.new_level,
                    privileges=ladder.privileges_at(step.new_level),
                    points_total=step.total,
                    entry_id=entry.id,
                    levels_version=ladder.version,
                )
            )
        progress = badges.Progress.of(counts[key], step.total, award.streak_days)
        for code in badges.earned(progress):
            if (*key, code) not in held:
                held.add((*key, code))
                step.codes.append(code)
                earned.append((*key, code, entry.id, award.created_at))
        steps.append(step)
    await ledger.set_levels(moved)
    # A badge another transaction gave meanwhile is theirs: no second BadgeAwarded.
    new = await ledger.add_badges(earned)

    results: dict[int, Landed] = {}
    staged: list[Staged] = []
    for step in steps:
        won = [code for code in step.codes if (*_member(step.entry), code) in new]
        staged += step.staged + [events.badge_awarded(step.entry, code) for code in won]
        results[step.entry.id] = Landed(step.entry, step.total, step.old_level, step.new_level, won)
    await events.RecognitionEvents(session).stage(staged)
    return [None if entry is None else results[entry.id] for entry in entries]


@dataclass
class _Step:
    """One award on its walk: the member's total after it, the levels around it, the badges
    it reached and the events it tells."""

    entry: Entry
    total: int
    old_level: int
    new_level: int
    codes: list[str] = field(default_factory=list)
    staged: list[Staged] = field(default_factory=list)


def _member(entry: Entry) -> Member:
    return (entry.award.community_id, entry.award.user_id)
