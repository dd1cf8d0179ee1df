"""Goals and progress as the contract's messages."""

from __future__ import annotations

from services.events.challenges.domain import Goal, Standing
from services.kit.timestamps import timestamp_or_none
from studyhall.events.v1 import activities_service_pb2 as pb


def goal_to_proto(goal: Goal | None) -> pb.ChallengeGoal | None:
    if goal is None:
        return None
    return pb.ChallengeGoal(
        kind=pb.ChallengeGoalKind.ValueType(goal.kind),
        target=goal.target,
        path_id=goal.path_id,
        reward_points=goal.reward_points,
        version=goal.version,
    )


def progress_to_proto(standing: Standing, goal: Goal | None) -> pb.ChallengeProgress:
    return pb.ChallengeProgress(
        activity_id=standing.activity_id,
        user_id=standing.user_id,
        progress=standing.progress,
        target=goal.target if goal else 0,
        completed=standing.completed_at is not None,
        complete_time=timestamp_or_none(standing.completed_at),
        rank=standing.rank,
    )
