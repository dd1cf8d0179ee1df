"""The member-care sweep: walks the communities, finds the members due a signal with
set-based queries, and records each signal with its event in one transaction.

Any number of sweeps may run at once (replicas) or again (restarts): the care_signals
primary key lets one insert win per member, kind and local day, and only the winner stages
the event, whose id is derived from the same key (docs/decisions/0010)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

from services.kit.cancellation import stop_if_cancelled
from services.kit.database import Database
from services.kit.service import Worker
from services.members.care import domain as care
from services.members.care.domain import Settings, Signal
from services.members.care.events import CareEvents
from services.members.care.store import Candidate, CareRepository, CommunityToSweep
from services.members.checkins.domain import local_day
from services.members.checkins.store import CheckinRepository

log = logging.getLogger(__name__)

COMMUNITY_PAGE = 200
WRITE_BATCH = 500


async def sweep_once(
    database: Database,
    now: datetime,
    *,
    on_commit: Callable[[], None] = lambda: None,
    page_size: int = COMMUNITY_PAGE,
) -> int:
    """One pass over every running community at `now`; returns how many signals it sent.
    A community that fails is logged and skipped: the next pass tries it again."""
    sent = 0
    after = ""
    while True:
        async with database.read() as session:
            page = await CareRepository(session).communities_after(after, page_size)
        for community in page:
            try:
                sent += await sweep_community(database, community, now)
            except Exception:
                log.exception("care sweep of community %s failed", community.id)
        if len(page) < page_size:
            break
        after = page[-1].id
    if sent:
        on_commit()
    return sent


async def sweep_community(database: Database, community: CommunityToSweep, now: datetime) -> int:
    async with database.read() as session:
        due = await signals_due(CareRepository(session), community, now)
    sent = 0
    for start in range(0, len(due), WRITE_BATCH):
        async with database.write() as session:
            stored = await CareRepository(session).record(due[start : start + WRITE_BATCH])
            await CareEvents(session).signals_sent(stored)
        sent += len(stored)
    return sent


async def signals_due(
    repository: CareRepository, community: CommunityToSweep, now: datetime
) -> list[Signal]:
    """The signals the community's members are due at `now`, less those already sent."""
    settings = await repository.settings(community.id)
    days = care.candidate_days(now)
    due: list[Signal] = []
    if settings.inactive_after_days:
        candidates = await repository.inactive(community.id, now, settings.inactive_after_days)
        due += _inactive(community, settings, candidates, now)
    grace = (await CheckinRepository(repository.session).settings(community.id)).grace_days
    candidates = await repository.streaks_running(community.id, now, grace)
    due += _at_risk(community, settings, candidates, now, grace)
    due += await _greetings(repository, community, settings, now)
    already: set[tuple[str, str, date]] = set()
    for kind in care.KINDS:
        sent = await repository.sent_on(community.id, kind, days)
        already |= {(user, kind, day) for user, day in sent}
    return [s for s in due if (s.user_id, s.kind, s.local_date) not in already]


def _inactive(
    community: CommunityToSweep, settings: Settings, candidates: list[Candidate], now: datetime
) -> list[Signal]:
    due = []
    for candidate in candidates:
        assert candidate.since is not None
        days = care.inactive_days(candidate.since, now, settings.inactive_after_days)
        if days:
            due.append(_signal(community, candidate, care.MEMBER_INACTIVE, now, days=days))
    return due


def _at_risk(
    community: CommunityToSweep,
    settings: Settings,
    candidates: list[Candidate],
    now: datetime,
    grace: int,
) -> list[Signal]:
    due = []
    for candidate in candidates:
        assert candidate.streak_last_date is not None
        local = now.astimezone(care.zone_of(candidate.profile_zone, community.time_zone))
        days = care.streak_at_risk(
            current=candidate.streak_current,
            last_date=candidate.streak_last_date,
            today=local.date(),
            grace_days=grace,
            local_hour=local.hour,
            reminder_hour=settings.streak_reminder_hour,
        )
        if days:
            due.append(_signal(community, candidate, care.STREAK_AT_RISK, now, days=days))
    return due


async def _greetings(
    repository: CareRepository, community: CommunityToSweep, settings: Settings, now: datetime
) -> list[Signal]:
    """Birthdays first: a member gets one greeting a day, and theirs is the more personal."""
    days = care.candidate_days(now)
    greeted: dict[str, Signal] = {}
    if settings.birthdays:
        for candidate in await repository.birthdays(community.id, now, care.birthday_pairs(days)):
            today = _today(candidate, community, now)
            if care.is_birthday(candidate.birth_month, candidate.birth_day, today):
                greeted[candidate.user_id] = _signal(
                    community, candidate, care.GREETING, now, occasion=care.BIRTHDAY
                )
    if any(care.holiday_on(settings.holidays, day) for day in days):
        for candidate in await repository.everyone(community.id, now):
            holiday = care.holiday_on(settings.holidays, _today(candidate, community, now))
            if holiday is not None and candidate.user_id not in greeted:
                greeted[candidate.user_id] = _signal(
                    community,
                    candidate,
                    care.GREETING,
                    now,
                    occasion=care.HOLIDAY,
                    holiday_name=holiday.name,
                )
    return list(greeted.values())


def _today(candidate: Candidate, community: CommunityToSweep, now: datetime) -> date:
    return local_day(now, str(care.zone_of(candidate.profile_zone, community.time_zone)))


def _signal(
    community: CommunityToSweep,
    candidate: Candidate,
    kind: str,
    now: datetime,
    *,
    days: int = 0,
    occasion: str = "",
    holiday_name: str = "",
) -> Signal:
    return Signal(
        community_id=community.id,
        user_id=candidate.user_id,
        kind=kind,
        local_date=_today(candidate, community, now),
        created_at=now,
        days=days,
        occasion=occasion,
        holiday_name=holiday_name,
    )


def sweep_loop(
    database: Database, interval_seconds: float, on_commit: Callable[[], None]
) -> Worker:
    """The background loop: waits an interval, sweeps, repeats. Waiting first keeps a
    freshly started replica from adding load while the others already sweep."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await sweep_once(database, datetime.now(UTC), on_commit=on_commit)
            except Exception:
                stop_if_cancelled()
                # The database may be down; the next interval tries again.
                log.exception("care sweep failed; next try in %s s", interval_seconds)

    return loop
