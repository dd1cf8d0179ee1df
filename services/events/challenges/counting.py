"""Counting what members do towards the challenges they take part in, and completing them
once (docs/decisions/0045).

Each fact is kept by what makes it the same fact (a check-in's local date, an answer, a
path), so a redelivered one changes nothing and a late one is counted where it belongs: by
when it happened, not when it arrived. Progress is recounted from the kept facts, and the
completion time is the target-th fact's, so any order of arrival ends the same way (a late
fact that happened earlier moves it back). The member's progress row is locked first;
completing changes it only once, and only then is ChallengeCompleted staged, in the same
transaction, with the completion time known at that moment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.events.challenges import domain
from services.events.challenges.domain import Fact
from services.events.challenges.events import challenge_completed
from services.events.challenges.store import ChallengeRepository


async def count(session: AsyncSession, fact: Fact, now: datetime) -> int:
    """Counts `fact` towards the member's challenges; how many it completed."""
    repository = ChallengeRepository(session)
    completed = 0
    for goal, activity in await repository.goals_of_member(fact):
        if not domain.counts_towards(goal, activity, fact):
            continue
        await repository.take_progress(goal, fact.user_id, now)
        await repository.record(goal.activity_id, fact)
        times = await repository.counted_times(goal.activity_id, fact.user_id)
        await repository.set_progress(goal.activity_id, fact.user_id, len(times), now)
        reached = domain.completion_time(goal, times)
        if reached is not None and await repository.complete(
            goal.activity_id, fact.user_id, reached
        ):
            await challenge_completed(session, goal, fact.user_id, reached)
            completed += 1
    return completed
