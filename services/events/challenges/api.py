"""gRPC handlers for challenges: the organizers set the goal; members and readers follow
progress and the leaderboard."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity, ActivityKind
from services.events.activities.lookup import (
    organized_activity,
    organizes,
    visible_activity,
)
from services.events.challenges import domain
from services.events.challenges.domain import Standing
from services.events.challenges.messages import goal_to_proto, progress_to_proto
from services.events.challenges.store import ChallengeRepository
from services.kit.access import Access
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition, PermissionDenied
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.validation import Violations
from studyhall.events.v1 import activities_service_pb2 as pb

# Leaderboard pages are cut by rank; the position's time is not used.
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)


class ChallengesApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def SetChallengeGoal(
        self, request: pb.SetChallengeGoalRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetChallengeGoalResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        goal = request.goal
        problems.enum("goal.kind", goal.kind, domain.GoalKind, "ChallengeGoalKind", required=True)
        if goal.kind == pb.CHALLENGE_GOAL_KIND_PATH_COMPLETED:
            problems.uuid("goal.path_id", goal.path_id)
        problems.raise_if_any()
        standing = await self.access.require_writable(
            request.community_id, caller, "setting a challenge's goal"
        )

        async def set_goal(session: AsyncSession) -> pb.SetChallengeGoalResponse:
            activity = await organized_activity(
                session,
                request.community_id,
                request.activity_id,
                standing,
                caller,
                "setting a challenge's goal",
            )
            repository = ChallengeRepository(session)
            made = domain.goal_for(
                activity,
                goal.kind,
                goal.target,
                goal.path_id,
                goal.reward_points,
                await repository.goal(activity.id),
                datetime.now(UTC),
            )
            await repository.save_goal(made)
            return pb.SetChallengeGoalResponse(goal=goal_to_proto(made))

        return await self.writer.write(
            caller.user_id, request, pb.SetChallengeGoalResponse, set_goal
        )

    async def GetChallengeProgress(
        self, request: pb.GetChallengeProgressRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetChallengeProgressResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.raise_if_any()
        whose = request.user_id or caller.user_id
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            activity = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
            if whose != caller.user_id and not organizes(activity, standing, caller):
                raise PermissionDenied(
                    "another member's progress is for the challenge's organizers and moderators"
                )
            _require_challenge(activity)
            repository = ChallengeRepository(session)
            goal = await repository.goal(activity.id)
            found = await repository.standing(activity.id, whose)
        progress = found or Standing(activity.id, whose, 0)
        return pb.GetChallengeProgressResponse(
            progress=progress_to_proto(progress, goal), goal=goal_to_proto(goal)
        )

    async def ListChallengeLeaderboard(
        self, request: pb.ListChallengeLeaderboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListChallengeLeaderboardResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        page = read_page(problems, request, ["challenge-board", request.activity_id], numeric=True)
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            activity = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
            _require_challenge(activity)
            repository = ChallengeRepository(session)
            goal = await repository.goal(activity.id)
            found = await repository.board(activity.id, page.after_number or 0, page.size + 1)
        listed, token = page_of(found, page, lambda s: (_NO_TIME, str(s.rank)))
        return pb.ListChallengeLeaderboardResponse(
            entries=[progress_to_proto(s, goal) for s in listed],
            next_page_token=token,
            goal=goal_to_proto(goal),
            activity_id=activity.id,
        )


def _require_challenge(activity: Activity) -> None:
    if activity.kind is not ActivityKind.CHALLENGE:
        raise FailedPrecondition(f"activity {activity.id} is not a challenge")
