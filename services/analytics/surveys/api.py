"""The gRPC handlers of surveys: decode, validate, authorize, call, encode."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, time

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.domain import date_range
from services.analytics.surveys import domain
from services.analytics.surveys.domain import Survey
from services.analytics.surveys.events import SurveyEvents
from services.analytics.surveys.store import SurveyRepository
from services.kit.access import Access, Role
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import AlreadyExists, FailedPrecondition, PermissionDenied
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.segments import segment_members
from services.kit.timestamps import timestamp, timestamp_or_none
from services.kit.validation import Violations
from studyhall.analytics.v1 import analytics_service_pb2 as pb


class SurveysApi:
    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        members: Callable[[], grpc.aio.Channel],
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        # The members service, asked for a segment's members.
        self.members = members

    async def CreateSurvey(
        self, request: pb.CreateSurveyRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateSurveyResponse:
        caller = current_identity()
        questions = domain.questions_of(request.title, request.questions)
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "creating a survey", writable=True
        )
        recipients: list[str] = []
        if request.segment_id:
            # Asked before the transaction: a slow members service holds no database lock.
            recipients = sorted(
                set(
                    await segment_members(
                        self.members(), caller, request.community_id, request.segment_id
                    )
                )
            )

        async def create(session: AsyncSession) -> pb.CreateSurveyResponse:
            survey = Survey(
                id=str(uuid.uuid4()),
                community_id=request.community_id,
                title=request.title,
                questions=questions,
                segment_id=request.segment_id,
                recipient_count=len(recipients),
                created_by=caller.user_id,
                created_at=datetime.now(UTC),
                closed_at=None,
                answer_count=0,
                version=1,
            )
            await SurveyRepository(session).add(survey, recipients)
            await SurveyEvents(session).published(survey, recipients)
            return pb.CreateSurveyResponse(survey=_survey(survey))

        return await self.writer.write(caller.user_id, request, pb.CreateSurveyResponse, create)

    async def GetSurvey(
        self, request: pb.GetSurveyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSurveyResponse:
        caller = current_identity()
        standing = await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "reading a survey"
        )
        async with self.database.read() as session:
            surveys = SurveyRepository(session)
            survey = await surveys.get(request.community_id, request.survey_id)
            if survey is None:
                raise domain.survey_not_found(request.survey_id, request.community_id)
            sent = await self._sent_to(surveys, survey, caller)
            admin = caller.operator or (standing.role is not None and standing.role >= Role.ADMIN)
            if not (sent or admin):
                raise PermissionDenied(f"survey {survey.id} was not sent to you")
            answered = await surveys.answered(survey, caller.user_id)
        return pb.GetSurveyResponse(
            survey=_survey(survey),
            can_answer=sent and survey.open and not answered and not standing.archived,
            answered=answered,
        )

    async def ListSurveys(
        self, request: pb.ListSurveysRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSurveysResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["surveys", request.community_id])
        problems.raise_if_any()
        await self.access.require_role(request.community_id, caller, Role.MEMBER, "listing surveys")
        async with self.database.read() as session:
            found = await SurveyRepository(session).page(request.community_id, page)
        listed, token = page_of(found, page, lambda survey: (survey.created_at, survey.id))
        return pb.ListSurveysResponse(
            surveys=[_survey(survey) for survey in listed], next_page_token=token
        )

    async def AnswerSurvey(
        self, request: pb.AnswerSurveyRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnswerSurveyResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "answering a survey", writable=True
        )

        async def answer(session: AsyncSession) -> pb.AnswerSurveyResponse:
            surveys = SurveyRepository(session)
            survey = await surveys.get(request.community_id, request.survey_id)
            if survey is None:
                raise domain.survey_not_found(request.survey_id, request.community_id)
            if not await self._sent_to(surveys, survey, caller):
                raise PermissionDenied(f"survey {survey.id} was not sent to you")
            answers = domain.answers_of(survey, request.answers)
            if not survey.open:
                raise FailedPrecondition(f"survey {survey.id} is closed")
            if await surveys.answered(survey, caller.user_id):
                raise AlreadyExists(
                    f"survey_id: you answered survey {survey.id} already; a member answers once"
                )
            now = datetime.now(UTC)
            await surveys.answer(survey, caller.user_id, answers, now)
            await SurveyEvents(session).answered(survey, caller.user_id, now)
            return pb.AnswerSurveyResponse(answer_time=timestamp(now))

        return await self.writer.write(caller.user_id, request, pb.AnswerSurveyResponse, answer)

    async def CloseSurvey(
        self, request: pb.CloseSurveyRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseSurveyResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "closing a survey", writable=True
        )

        async def close(session: AsyncSession) -> pb.CloseSurveyResponse:
            surveys = SurveyRepository(session)
            survey = await surveys.get(request.community_id, request.survey_id)
            if survey is None:
                raise domain.survey_not_found(request.survey_id, request.community_id)
            if not survey.open:
                raise FailedPrecondition(f"survey {survey.id} is closed already")
            now = datetime.now(UTC)
            await surveys.close(survey, now)
            await SurveyEvents(session).closed(survey, caller.user_id, now)
            closed = await surveys.get(survey.community_id, survey.id)
            assert closed is not None
            return pb.CloseSurveyResponse(survey=_survey(closed))

        return await self.writer.write(caller.user_id, request, pb.CloseSurveyResponse, close)

    async def GetSurveyResults(
        self, request: pb.GetSurveyResultsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSurveyResultsResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "reading a survey's results"
        )
        async with self.database.read() as session:
            survey = await SurveyRepository(session).get(request.community_id, request.survey_id)
        if survey is None:
            raise domain.survey_not_found(request.survey_id, request.community_id)
        segment: list[str] | None = None
        if request.segment_id:
            segment = await segment_members(
                self.members(), caller, request.community_id, request.segment_id
            )
        async with self.database.read() as session:
            answered = await SurveyRepository(session).answers(survey, segment)
        reply = pb.GetSurveyResultsResponse(
            survey_id=survey.id, segment_id=request.segment_id, respondents=len(answered)
        )
        reply.questions.extend(t.result() for t in domain.tally(survey.questions, answered))
        return reply

    async def GetSatisfactionTrend(
        self, request: pb.GetSatisfactionTrendRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSatisfactionTrendResponse:
        days = date_range(request.start_date, request.end_date)
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "reading a community's satisfaction"
        )
        start = datetime.combine(days.start, time(), tzinfo=UTC)
        end = datetime.combine(days.end, time.max, tzinfo=UTC)
        async with self.database.read() as session:
            surveys = SurveyRepository(session)
            answers = await surveys.answers_between(request.community_id, start, end)
            feedback = await surveys.feedback_between(request.community_id, start, end)
        return pb.GetSatisfactionTrendResponse(
            community_id=request.community_id,
            weeks=[week.message() for week in domain.trend(answers, feedback)],
        )

    async def _sent_to(self, surveys: SurveyRepository, survey: Survey, caller: Identity) -> bool:
        """Whether the survey reaches the caller: every member (their role was checked), or
        the segment's members when it opened."""
        if not survey.segment_id:
            return True
        return await surveys.is_recipient(survey, caller.user_id)


def _survey(survey: Survey) -> pb.Survey:
    return pb.Survey(
        id=survey.id,
        community_id=survey.community_id,
        title=survey.title,
        questions=[
            pb.SurveyQuestion(
                key=q.key,
                kind=q.kind,  # type: ignore[arg-type]
                prompt=q.prompt,
                choices=list(q.choices),
                required=q.required,
            )
            for q in survey.questions
        ],
        segment_id=survey.segment_id,
        recipient_count=survey.recipient_count,
        created_by_user_id=survey.created_by,
        create_time=timestamp(survey.created_at),
        close_time=timestamp_or_none(survey.closed_at),
        answer_count=survey.answer_count,
        version=survey.version,
    )
