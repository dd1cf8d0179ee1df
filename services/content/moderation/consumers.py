"""The projection of members' reports about content, fed by ReportFiled and ReportResolved
through the kit's consumer and inbox (services/content/moderation/reports.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.moderation import reports
from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from studyhall.members.v1 import members_events_pb2 as members_events


async def apply(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
    for event, _envelope in batch:
        if isinstance(event, members_events.ReportFiled):
            await reports.filed(session, event)
        else:
            await reports.resolved(session, event)


def reports_subscription() -> Subscription:
    return Subscription(
        name="content-reports",
        source_service="members",
        event_types=(members_events.ReportFiled, members_events.ReportResolved),
        apply=apply,
    )
