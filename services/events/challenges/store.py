"""Challenges' goals, the facts that counted and members' progress, in the events service's
database.

A member's progress row is taken (inserted when new, then locked) before a fact is counted,
so two replicas counting facts of the same member take turns: the second recounts after the
first commits, and only one of them marks the challenge completed (`complete` changes a row
only while it is not completed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity, ActivityKind, ActivityState
from services.events.activities.store import activity_from_row
from services.events.challenges.domain import Fact, Goal, GoalKind, Standing
from services.events.registration.domain import WITH_SEAT
from services.events.store.tables import (
    activities,
    challenge_facts,
    challenge_progress,
    challenges,
    registrations,
)
from services.kit.database import insert_for, utc
from services.kit.projection import upsert_newer
from services.kit.versioned import save_versioned

_SEATS = [int(state) for state in WITH_SEAT]


class ChallengeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        dialect = session.get_bind().dialect.name
        self._insert: Any = insert_for(dialect)

    async def goal(self, activity_id: str) -> Goal | None:
        row = (
            await self.session.execute(
                select(challenges).where(challenges.c.activity_id == activity_id)
            )
        ).first()
        return goal_from_row(row) if row else None

    async def save_goal(self, goal: Goal) -> None:
        """The goal over the stored one a version older (StaleWrite if not)."""
        await save_versioned(self.session, challenges, [_goal_row(goal)], ["activity_id"])

    async def goals_of_member(self, fact: Fact) -> list[tuple[Goal, Activity]]:
        """The community's challenges with a goal of the fact's kind that the fact's member
        holds a seat in."""
        rows = await self.session.execute(
            select(activities, *[c.label(f"goal_{c.name}") for c in challenges.c])
            .join(challenges, challenges.c.activity_id == activities.c.id)
            .join(registrations, registrations.c.activity_id == activities.c.id)
            .where(
                challenges.c.community_id == fact.community_id,
                challenges.c.goal_kind == int(fact.kind),
                activities.c.kind == int(ActivityKind.CHALLENGE),
                activities.c.state == int(ActivityState.SCHEDULED),
                registrations.c.user_id == fact.user_id,
                registrations.c.state.in_(_SEATS),
            )
        )
        found = []
        for row in rows:
            goal = Goal(
                activity_id=row.goal_activity_id,
                community_id=row.goal_community_id,
                kind=GoalKind(row.goal_goal_kind),
                target=row.goal_target,
                path_id=row.goal_path_id,
                reward_points=row.goal_reward_points,
                updated_at=utc(row.goal_updated_at),
                version=row.goal_version,
            )
            found.append((goal, activity_from_row(row)))
        return found

    async def take_progress(self, goal: Goal, user_id: str, now: datetime) -> Standing:
        """The member's progress row, made when new, locked until the transaction ends."""
        await self.session.execute(
            self._insert(challenge_progress)
            .values(
                activity_id=goal.activity_id,
                user_id=user_id,
                community_id=goal.community_id,
                progress=0,
                completed_at=None,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["activity_id", "user_id"])
        )
        row = (
            await self.session.execute(
                select(challenge_progress)
                .where(
                    challenge_progress.c.activity_id == goal.activity_id,
                    challenge_progress.c.user_id == user_id,
                )
                .with_for_update()
            )
        ).one()
        return standing_from_row(row)

    async def record(self, activity_id: str, fact: Fact) -> None:
        """The fact, unless a newer version of it is there already."""
        await upsert_newer(
            self.session,
            challenge_facts,
            [
                {
                    "activity_id": activity_id,
                    "user_id": fact.user_id,
                    "fact_key": fact.key,
                    "community_id": fact.community_id,
                    "counted": int(fact.counted),
                    "version": fact.version,
                    "happened_at": fact.happened_at,
                }
            ],
            ["activity_id", "user_id", "fact_key"],
        )

    async def counted_times(self, activity_id: str, user_id: str) -> list[datetime]:
        rows = await self.session.scalars(
            select(challenge_facts.c.happened_at).where(
                challenge_facts.c.activity_id == activity_id,
                challenge_facts.c.user_id == user_id,
                challenge_facts.c.counted == 1,
            )
        )
        return [utc(at) for at in rows]

    async def set_progress(
        self, activity_id: str, user_id: str, progress: int, now: datetime
    ) -> None:
        await self.session.execute(
            update(challenge_progress)
            .where(
                challenge_progress.c.activity_id == activity_id,
                challenge_progress.c.user_id == user_id,
            )
            .values(progress=progress, updated_at=now)
        )

    async def complete(self, activity_id: str, user_id: str, at: datetime) -> bool:
        """Marks the member's challenge completed at `at`; False when it already was (then
        an earlier `at`, from a fact that arrived late, moves the time back)."""
        key = (
            challenge_progress.c.activity_id == activity_id,
            challenge_progress.c.user_id == user_id,
        )
        await self.session.execute(
            update(challenge_progress)
            .where(*key, challenge_progress.c.completed_at > at)
            .values(completed_at=at)
        )
        done = await self.session.execute(
            update(challenge_progress)
            .where(
                challenge_progress.c.activity_id == activity_id,
                challenge_progress.c.user_id == user_id,
                challenge_progress.c.completed_at.is_(None),
            )
            .values(completed_at=at)
        )
        return bool(getattr(done, "rowcount", 0))

    async def standing(self, activity_id: str, user_id: str) -> Standing | None:
        """The member's progress and rank; None before anything counted."""
        row = (
            await self.session.execute(
                select(challenge_progress).where(
                    challenge_progress.c.activity_id == activity_id,
                    challenge_progress.c.user_id == user_id,
                )
            )
        ).first()
        if row is None:
            return None
        mine = standing_from_row(row)
        ahead = await self.session.scalar(
            select(func.count())
            .select_from(challenge_progress)
            .where(challenge_progress.c.activity_id == activity_id, _ahead_of(mine))
        )
        return Standing(
            mine.activity_id, mine.user_id, mine.progress, mine.completed_at, int(ahead or 0) + 1
        )

    async def board(self, activity_id: str, offset: int, limit: int) -> list[Standing]:
        """The leaderboard from `offset`: most progress first, then who completed first."""
        p = challenge_progress.c
        rows = await self.session.execute(
            select(challenge_progress)
            .where(p.activity_id == activity_id)
            .order_by(p.progress.desc(), p.completed_at.is_(None), p.completed_at, p.user_id)
            .offset(offset)
            .limit(limit)
        )
        return [
            Standing(
                row.activity_id,
                row.user_id,
                row.progress,
                utc(row.completed_at) if row.completed_at else None,
                offset + index + 1,
            )
            for index, row in enumerate(rows)
        ]

    async def of_member(self, community_id: str, user_id: str) -> list[Standing]:
        rows = await self.session.execute(
            select(challenge_progress)
            .where(_member(community_id, user_id))
            .order_by(challenge_progress.c.activity_id)
        )
        return [standing_from_row(row) for row in rows]

    async def forget_member(self, community_id: str, user_id: str) -> None:
        """The member's progress and counted facts go: the leaderboard closes up."""
        await self.session.execute(delete(challenge_progress).where(_member(community_id, user_id)))
        await self.session.execute(
            delete(challenge_facts).where(
                challenge_facts.c.community_id == community_id,
                challenge_facts.c.user_id == user_id,
            )
        )


def _member(community_id: str, user_id: str) -> Any:
    return and_(
        challenge_progress.c.community_id == community_id,
        challenge_progress.c.user_id == user_id,
    )


def _ahead_of(mine: Standing) -> Any:
    """Rows ranked before `mine` on the leaderboard's order."""
    p = challenge_progress.c
    if mine.completed_at is None:
        tie = or_(p.completed_at.is_not(None), p.user_id < mine.user_id)
    else:
        tie = and_(
            p.completed_at.is_not(None),
            or_(
                p.completed_at < mine.completed_at,
                and_(p.completed_at == mine.completed_at, p.user_id < mine.user_id),
            ),
        )
    return or_(p.progress > mine.progress, and_(p.progress == mine.progress, tie))


def _goal_row(goal: Goal) -> dict[str, Any]:
    return {
        "activity_id": goal.activity_id,
        "community_id": goal.community_id,
        "goal_kind": int(goal.kind),
        "target": goal.target,
        "path_id": goal.path_id,
        "reward_points": goal.reward_points,
        "version": goal.version,
        "updated_at": goal.updated_at,
    }


def goal_from_row(row: Row[Any]) -> Goal:
    return Goal(
        activity_id=row.activity_id,
        community_id=row.community_id,
        kind=GoalKind(row.goal_kind),
        target=row.target,
        path_id=row.path_id,
        reward_points=row.reward_points,
        updated_at=utc(row.updated_at),
        version=row.version,
    )


def standing_from_row(row: Row[Any]) -> Standing:
    return Standing(
        activity_id=row.activity_id,
        user_id=row.user_id,
        progress=row.progress,
        completed_at=utc(row.completed_at) if row.completed_at is not None else None,
    )
