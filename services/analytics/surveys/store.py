"""Surveys, their recipients and answers in analytics' database."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.store.tables import feedback, survey_answers, survey_recipients, surveys
from services.analytics.surveys.domain import Question, Survey
from services.kit.database import utc
from services.kit.paging import PageRequest
from services.kit.versioned import update_versioned


class SurveyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, community_id: str, survey_id: str) -> Survey | None:
        row = (
            await self.session.execute(
                select(surveys).where(
                    surveys.c.community_id == community_id, surveys.c.survey_id == survey_id
                )
            )
        ).first()
        return None if row is None else _survey(row)

    async def page(self, community_id: str, page: PageRequest) -> list[Survey]:
        """Newest first, `page.size + 1` of them after the page's position."""
        query = select(surveys).where(surveys.c.community_id == community_id)
        if page.after is not None:
            at, survey_id = page.after
            query = query.where(
                or_(
                    surveys.c.created_at < at,
                    and_(surveys.c.created_at == at, surveys.c.survey_id < survey_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(surveys.c.created_at.desc(), surveys.c.survey_id.desc()).limit(
                page.size + 1
            )
        )
        return [_survey(row) for row in rows]

    async def add(self, survey: Survey, recipients: Collection[str]) -> None:
        await self.session.execute(
            surveys.insert().values(
                community_id=survey.community_id,
                survey_id=survey.id,
                title=survey.title,
                questions=json.dumps([q.as_json() for q in survey.questions]),
                segment_id=survey.segment_id,
                recipient_count=survey.recipient_count,
                created_by=survey.created_by,
                created_at=survey.created_at,
                closed_at=None,
                answer_count=0,
                version=survey.version,
            )
        )
        if recipients:
            await self.session.execute(
                survey_recipients.insert(),
                [
                    {"community_id": survey.community_id, "survey_id": survey.id, "user_id": u}
                    for u in recipients
                ],
            )

    async def close(self, survey: Survey, at: datetime) -> None:
        """Closed at `at`, one version on (StaleWrite when it changed meanwhile)."""
        await update_versioned(
            self.session,
            surveys,
            {
                "community_id": survey.community_id,
                "survey_id": survey.id,
                "closed_at": at,
                "version": survey.version + 1,
            },
            ["community_id", "survey_id"],
        )

    async def is_recipient(self, survey: Survey, user_id: str) -> bool:
        found = await self.session.scalar(
            select(survey_recipients.c.user_id).where(
                survey_recipients.c.community_id == survey.community_id,
                survey_recipients.c.survey_id == survey.id,
                survey_recipients.c.user_id == user_id,
            )
        )
        return found is not None

    async def answered(self, survey: Survey, user_id: str) -> bool:
        found = await self.session.scalar(
            select(survey_answers.c.user_id).where(
                survey_answers.c.community_id == survey.community_id,
                survey_answers.c.survey_id == survey.id,
                survey_answers.c.user_id == user_id,
            )
        )
        return found is not None

    async def answer(
        self, survey: Survey, user_id: str, answers: dict[str, dict[str, Any]], at: datetime
    ) -> None:
        """The member's answers (a second insert of the same member fails on the key: the
        caller's transaction runs again and finds them), and one more on the survey's count,
        added where it is so concurrent answers all count."""
        await self.session.execute(
            survey_answers.insert().values(
                community_id=survey.community_id,
                survey_id=survey.id,
                user_id=user_id,
                answers=json.dumps(answers, sort_keys=True),
                answered_at=at,
            )
        )
        await self.session.execute(
            update(surveys)
            .where(surveys.c.community_id == survey.community_id, surveys.c.survey_id == survey.id)
            .values(answer_count=surveys.c.answer_count + 1)
        )

    async def answers(
        self, survey: Survey, users: Collection[str] | None = None
    ) -> list[dict[str, dict[str, Any]]]:
        """Every respondent's answers (of `users` only, when named), newest first."""
        query = select(survey_answers.c.answers, survey_answers.c.user_id).where(
            survey_answers.c.community_id == survey.community_id,
            survey_answers.c.survey_id == survey.id,
        )
        rows = await self.session.execute(
            query.order_by(survey_answers.c.answered_at.desc(), survey_answers.c.user_id)
        )
        wanted = None if users is None else set(users)
        return [json.loads(text) for text, user in rows if wanted is None or user in wanted]

    async def answers_between(
        self, community_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, tuple[Question, ...], dict[str, dict[str, Any]]]]:
        """Every answer given from `start` to `end`, with its survey's questions."""
        rows = await self.session.execute(
            select(survey_answers.c.answered_at, survey_answers.c.answers, surveys.c.questions)
            .join(
                surveys,
                and_(
                    surveys.c.community_id == survey_answers.c.community_id,
                    surveys.c.survey_id == survey_answers.c.survey_id,
                ),
            )
            .where(
                survey_answers.c.community_id == community_id,
                survey_answers.c.answered_at >= start,
                survey_answers.c.answered_at <= end,
            )
        )
        return [(utc(at), _questions(questions), json.loads(text)) for at, text, questions in rows]

    async def feedback_between(
        self, community_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, int]]:
        """Activities' feedback submitted from `start` to `end`: when, and the overall rating."""
        rows = await self.session.execute(
            select(feedback.c.submitted_at, feedback.c.overall_rating).where(
                feedback.c.community_id == community_id,
                feedback.c.submitted_at >= start,
                feedback.c.submitted_at <= end,
            )
        )
        return [(utc(at), int(rating)) for at, rating in rows]


def _questions(text: str) -> tuple[Question, ...]:
    return tuple(Question.from_json(raw) for raw in json.loads(text))


def _survey(row: Any) -> Survey:
    return Survey(
        id=row.survey_id,
        community_id=row.community_id,
        title=row.title,
        questions=_questions(row.questions),
        segment_id=row.segment_id,
        recipient_count=int(row.recipient_count),
        created_by=row.created_by,
        created_at=utc(row.created_at),
        closed_at=utc(row.closed_at) if row.closed_at is not None else None,
        answer_count=int(row.answer_count),
        version=int(row.version),
    )
