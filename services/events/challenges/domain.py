"""Challenges: a goal reached between an activity's start and end, and its reward. Rules
only, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from services.events.activities.domain import Activity, ActivityKind, check_scheduled
from services.kit.errors import FailedPrecondition, InvalidArgument

TARGET_MAX = 1000
REWARD_MIN, REWARD_MAX = 1, 1000


class GoalKind(IntEnum):
    """As ChallengeGoalKind in the contract."""

    CHECK_IN_DAYS = 1
    PATH_COMPLETED = 2
    ACCEPTED_ANSWERS = 3


@dataclass(frozen=True)
class Goal:
    activity_id: str
    community_id: str
    kind: GoalKind
    target: int
    reward_points: int
    updated_at: datetime
    path_id: str = ""
    version: int = 1


@dataclass(frozen=True)
class Fact:
    """Something a member did that may count towards their challenges: a day checked in,
    an answer accepted (or no longer), a path finished."""

    community_id: str
    user_id: str
    kind: GoalKind
    # What makes two facts the same one: a local date, an answer, a path.
    key: str
    happened_at: datetime
    counted: bool = True
    # The answer's version for acceptances; 1 otherwise.
    version: int = 1


@dataclass(frozen=True)
class Standing:
    """A member's place in a challenge."""

    activity_id: str
    user_id: str
    progress: int
    completed_at: datetime | None = None
    rank: int = 0


def days_of(activity: Activity) -> int:
    """How many days a challenge lasts (a part of a day counts as one)."""
    return max(1, math.ceil((activity.ends_at - activity.start_time) / timedelta(days=1)))


def goal_for(
    activity: Activity,
    kind: int,
    target: int,
    path_id: str,
    reward_points: int,
    before: Goal | None,
    now: datetime,
) -> Goal:
    """The goal an organizer sets, checked against the challenge it is for."""
    if activity.kind is not ActivityKind.CHALLENGE:
        raise FailedPrecondition(
            f"activity {activity.id} is not a challenge; only challenges have a goal"
        )
    check_scheduled(activity, "given a goal")
    if activity.start_time <= now:
        raise FailedPrecondition(f"challenge {activity.id} has started; its goal is fixed")
    if kind not in {int(k) for k in GoalKind}:
        raise InvalidArgument.field(
            "goal.kind", "must be check_in_days, path_completed or accepted_answers"
        )
    goal_kind = GoalKind(kind)
    if goal_kind is GoalKind.PATH_COMPLETED:
        if target not in (0, 1):
            raise InvalidArgument.field("goal.target", "must be 1 (or 0) for a path to finish")
        target = 1
    elif not 1 <= target <= TARGET_MAX:
        raise InvalidArgument.field("goal.target", f"must be between 1 and {TARGET_MAX}")
    if goal_kind is GoalKind.CHECK_IN_DAYS and target > days_of(activity):
        raise InvalidArgument.field(
            "goal.target", f"must be at most the {days_of(activity)} days the challenge lasts"
        )
    if goal_kind is not GoalKind.PATH_COMPLETED and path_id:
        raise InvalidArgument.field("goal.path_id", "is only for a path_completed goal")
    if not REWARD_MIN <= reward_points <= REWARD_MAX:
        raise InvalidArgument.field(
            "goal.reward_points", f"must be between {REWARD_MIN} and {REWARD_MAX}"
        )
    return Goal(
        activity_id=activity.id,
        community_id=activity.community_id,
        kind=goal_kind,
        target=target,
        path_id=path_id,
        reward_points=reward_points,
        updated_at=now,
        version=before.version + 1 if before else 1,
    )


def counts_towards(goal: Goal, activity: Activity, fact: Fact) -> bool:
    """A fact counts when it is of the goal's kind (the goal's path) and happened while the
    challenge ran, however late it arrives."""
    if fact.kind is not goal.kind or activity.cancelled:
        return False
    if goal.kind is GoalKind.PATH_COMPLETED and fact.key != goal.path_id:
        return False
    return activity.start_time <= fact.happened_at < activity.ends_at


def completion_time(goal: Goal, counted_times: list[datetime]) -> datetime | None:
    """When the goal was reached: the time of the target-th counted fact, whatever order the
    facts arrived in; None while it is not reached."""
    if len(counted_times) < goal.target:
        return None
    return sorted(counted_times)[goal.target - 1]
