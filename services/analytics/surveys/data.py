"""What surveys hold about a member, for ExportMyData (erasure: the answers pass to the
member's pseudonym and lose their free text with every other row that names them, in
services/analytics/store/rollups.py, so the results stay right)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.store.tables import survey_answers


async def export_answers(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(survey_answers.c.survey_id, survey_answers.c.answers, survey_answers.c.answered_at)
        .where(survey_answers.c.community_id == community_id, survey_answers.c.user_id == user_id)
        .order_by(survey_answers.c.answered_at)
    )
    return [
        {"survey_id": survey_id, "answers": json.loads(text), "answered_at": at.isoformat()}
        for survey_id, text, at in rows
    ]


EXPORTS = {"survey_answers": export_answers}
ERASERS = ()
