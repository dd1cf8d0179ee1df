"""gRPC handlers for feedback and review: attendees rate, organizers read the summary and
write the retrospective."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities import domain as activities
from services.events.activities.events import ActivityEvents
from services.events.activities.lookup import (
    organized_activity,
    require_organizer,
    visible_activity,
)
from services.events.activities.store import ActivityRepository
from services.events.feedback import domain
from services.events.feedback.events import feedback_submitted
from services.events.feedback.store import FeedbackRepository
from services.events.registration.domain import Attendance, RegistrationState
from services.events.registration.store import RegistrationRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition
from services.kit.grouped_writes import Writer
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.events.v1 import activities_service_pb2 as pb


class FeedbackApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def SubmitFeedback(
        self, request: pb.SubmitFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitFeedbackResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        if not 1 <= request.rating <= 5:
            problems.add("rating", f"must be 1 to 5, got {request.rating}")
        recommend = request.would_recommend if request.HasField("would_recommend") else None
        if recommend is not None and not 0 <= recommend <= 10:
            problems.add("would_recommend", f"must be 0 to 10, got {recommend}")
        problems.text("comment", request.comment, required=False, max_length=domain.COMMENT_MAX)
        problems.raise_if_any()
        standing = await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "giving feedback", writable=True
        )

        async def submit(session: AsyncSession) -> pb.SubmitFeedbackResponse:
            activity = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
            now = datetime.now(UTC)
            if activity.start_time > now:
                raise FailedPrecondition(f"activity {activity.id} has not started yet")
            registration = await RegistrationRepository(session).of_member(
                activity.id, caller.user_id
            )
            if registration is None or registration.attendance is not Attendance.ATTENDED:
                raise FailedPrecondition(
                    f"feedback on activity {activity.id} is for those who attended it"
                )
            repository = FeedbackRepository(session)
            item = domain.submitted(
                await repository.of_member(activity.id, caller.user_id),
                activity_id=activity.id,
                community_id=activity.community_id,
                user_id=caller.user_id,
                rating=request.rating,
                would_recommend=recommend,
                comment=request.comment,
                now=now,
            )
            await repository.save(item)
            await feedback_submitted(session, item)
            return pb.SubmitFeedbackResponse(feedback=_feedback(item))

        return await self.writer.write(caller.user_id, request, pb.SubmitFeedbackResponse, submit)

    async def GetFeedbackSummary(
        self, request: pb.GetFeedbackSummaryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFeedbackSummaryResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            activity = await visible_activity(
                session, request.community_id, request.activity_id, standing, caller
            )
            require_organizer(activity, standing, caller, "reading an activity's feedback")
            summary = await _summary(session, activity)
        return pb.GetFeedbackSummaryResponse(summary=summary)

    async def WriteRetrospective(
        self, request: pb.WriteRetrospectiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.WriteRetrospectiveResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("activity_id", request.activity_id)
        problems.text("retrospective", request.retrospective, max_length=domain.RETROSPECTIVE_MAX)
        problems.raise_if_any()
        standing = await self.access.require_writable(
            request.community_id, caller, "writing a retrospective"
        )

        async def write(session: AsyncSession) -> pb.WriteRetrospectiveResponse:
            activity = await organized_activity(
                session,
                request.community_id,
                request.activity_id,
                standing,
                caller,
                "writing a retrospective",
            )
            written = activities.write_retrospective(activity, request.retrospective)
            await ActivityRepository(session).save(written)
            await ActivityEvents(session).retrospective_written(
                written, caller.user_id, datetime.now(UTC)
            )
            return pb.WriteRetrospectiveResponse(summary=await _summary(session, written))

        return await self.writer.write(
            caller.user_id, request, pb.WriteRetrospectiveResponse, write
        )


async def _summary(session: AsyncSession, activity: activities.Activity) -> pb.FeedbackSummary:
    counts = await RegistrationRepository(session).counts(activity.id)
    seated = (int(RegistrationState.SEATED), int(RegistrationState.HELD))
    registered = sum(n for (state, _), n in counts.items() if state in seated)
    attended = sum(n for (_, mark), n in counts.items() if mark == int(Attendance.ATTENDED))
    no_shows = sum(n for (_, mark), n in counts.items() if mark == int(Attendance.NO_SHOW))
    waitlisted = sum(
        n for (state, _), n in counts.items() if state == int(RegistrationState.WAITLISTED)
    )
    given = await FeedbackRepository(session).of_activity(activity.id)
    answers = [item.would_recommend for item in given if item.would_recommend is not None]
    return pb.FeedbackSummary(
        activity_id=activity.id,
        registered=registered,
        attended=attended,
        attendance_rate=round(attended / registered, 4) if registered else 0.0,
        no_shows=no_shows,
        waitlisted=waitlisted,
        feedback_count=len(given),
        average_rating=domain.average([item.rating for item in given]),
        nps=domain.net_promoter_score(answers),
        recommend_answers=len(answers),
        comments=[item.comment for item in given if item.comment][: domain.COMMENTS_SHOWN],
        retrospective=activity.retrospective,
    )


def _feedback(item: domain.Feedback) -> pb.Feedback:
    shown = pb.Feedback(
        id=item.id,
        activity_id=item.activity_id,
        community_id=item.community_id,
        user_id=item.user_id or "",
        rating=item.rating,
        comment=item.comment,
        submit_time=timestamp(item.submitted_at),
        version=item.version,
    )
    if item.would_recommend is not None:
        shown.would_recommend = item.would_recommend
    return shown
