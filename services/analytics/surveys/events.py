"""The facts about surveys, staged in analytics' outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.store.outbox import OUTBOX
from services.analytics.surveys.domain import Survey
from services.kit.timestamps import timestamp
from studyhall.analytics.v1 import analytics_events_pb2 as events

# Members named by one SurveyInvited: well under NATS' default 1 MB message.
INVITED_PER_EVENT = 1_000


class SurveyEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def published(self, survey: Survey, recipients: Sequence[str]) -> None:
        """SurveyPublished, then the segment's members in batches a message can carry."""
        await self._add(
            survey,
            events.SurveyPublished(
                survey_id=survey.id,
                community_id=survey.community_id,
                created_by_user_id=survey.created_by,
                segment_id=survey.segment_id,
                recipient_count=len(recipients),
                question_count=len(survey.questions),
                version=survey.version,
                publish_time=timestamp(survey.created_at),
            ),
        )
        batches = [
            recipients[n : n + INVITED_PER_EVENT]
            for n in range(0, len(recipients), INVITED_PER_EVENT)
        ]
        for number, batch in enumerate(batches, start=1):
            await self._add(
                survey,
                events.SurveyInvited(
                    survey_id=survey.id,
                    community_id=survey.community_id,
                    user_ids=list(batch),
                    batch=number,
                    batches=len(batches),
                ),
            )

    async def answered(self, survey: Survey, user_id: str, at: datetime) -> None:
        await self._add(
            survey,
            events.SurveyAnswered(
                survey_id=survey.id,
                community_id=survey.community_id,
                user_id=user_id,
                answer_time=timestamp(at),
            ),
        )

    async def closed(self, survey: Survey, by: str, at: datetime) -> None:
        await self._add(
            survey,
            events.SurveyClosed(
                survey_id=survey.id,
                community_id=survey.community_id,
                closed_by_user_id=by,
                answer_count=survey.answer_count,
                version=survey.version + 1,
                close_time=timestamp(at),
            ),
        )

    async def _add(self, survey: Survey, event: Message) -> None:
        await OUTBOX.add(
            self.session,
            event,
            community_id=survey.community_id,
            subject=f"communities/{survey.community_id}/surveys/{survey.id}",
        )
