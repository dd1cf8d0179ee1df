"""Moderation cases, the review queue and the moderation log in the content database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.moderation.decisions import Case, Status
from services.content.store.tables import content_reports, moderation_cases, moderation_log
from services.kit.database import utc
from services.kit.paging import Position

# Queue filters (studyhall.content.v1.ReviewReason).
HELD = 1
APPEALED = 2
REPORTED = 3


class CaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, community_id: str, target_kind: str, target_id: str) -> Case | None:
        row = (
            await self.session.execute(
                select(moderation_cases).where(
                    moderation_cases.c.community_id == community_id,
                    moderation_cases.c.target_kind == target_kind,
                    moderation_cases.c.target_id == target_id,
                )
            )
        ).first()
        return _case(row) if row else None

    async def save(self, case: Case, existed: bool) -> None:
        values = _values(case)
        if existed:
            await self.session.execute(
                update(moderation_cases)
                .where(
                    moderation_cases.c.target_kind == case.target_kind,
                    moderation_cases.c.target_id == case.target_id,
                )
                .values(**values)
            )
        else:
            await self.session.execute(
                moderation_cases.insert().values(
                    target_kind=case.target_kind, target_id=case.target_id, **values
                )
            )

    async def queue(
        self, community_id: str, reason: int, after: Position | None, limit: int
    ) -> list[Case]:
        """What waits for review, oldest first."""
        query = select(moderation_cases).where(
            moderation_cases.c.community_id == community_id,
            moderation_cases.c.queued_at.is_not(None),
        )
        if reason == HELD:
            query = query.where(moderation_cases.c.status == Status.HELD.value)
        elif reason == APPEALED:
            query = query.where(moderation_cases.c.appeal_open.is_(True))
        elif reason == REPORTED:
            query = query.where(moderation_cases.c.open_reports > 0)
        if after is not None:
            moment, target_id = after
            query = query.where(
                or_(
                    moderation_cases.c.queued_at > moment,
                    and_(
                        moderation_cases.c.queued_at == moment,
                        moderation_cases.c.target_id > target_id,
                    ),
                )
            )
        rows = await self.session.execute(
            query.order_by(moderation_cases.c.queued_at, moderation_cases.c.target_id).limit(limit)
        )
        return [_case(row) for row in rows]


@dataclass(frozen=True)
class ContentReport:
    report_id: str
    community_id: str
    target_kind: str
    target_id: str
    reason: int  # studyhall.members.v1.ReportReason
    open: bool
    version: int
    filed_at: datetime | None = None


class ReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, report_id: str) -> ContentReport | None:
        row = (
            await self.session.execute(
                select(content_reports).where(content_reports.c.report_id == report_id)
            )
        ).first()
        if row is None:
            return None
        return ContentReport(
            report_id=row.report_id,
            community_id=row.community_id,
            target_kind=row.target_kind,
            target_id=row.target_id,
            reason=int(row.reason),
            open=bool(row.open),
            version=int(row.version),
            filed_at=utc(row.filed_at) if row.filed_at is not None else None,
        )

    async def save(self, report: ContentReport, existed: bool) -> None:
        values = {
            "community_id": report.community_id,
            "target_kind": report.target_kind,
            "target_id": report.target_id,
            "reason": report.reason,
            "open": report.open,
            "version": report.version,
            "filed_at": report.filed_at,
        }
        if existed:
            await self.session.execute(
                update(content_reports)
                .where(content_reports.c.report_id == report.report_id)
                .values(**values)
            )
        else:
            await self.session.execute(
                content_reports.insert().values(report_id=report.report_id, **values)
            )

    async def open_about(self, target_ids: list[str]) -> list[ContentReport]:
        """The open reports about these items (posts or comments: ids are UUIDs), oldest
        first."""
        if not target_ids:
            return []
        rows = await self.session.execute(
            select(content_reports)
            .where(
                content_reports.c.target_id.in_(target_ids),
                content_reports.c.open.is_(True),
            )
            .order_by(content_reports.c.filed_at, content_reports.c.report_id)
        )
        return [
            ContentReport(
                report_id=row.report_id,
                community_id=row.community_id,
                target_kind=row.target_kind,
                target_id=row.target_id,
                reason=int(row.reason),
                open=True,
                version=int(row.version),
                filed_at=utc(row.filed_at) if row.filed_at is not None else None,
            )
            for row in rows
        ]


@dataclass(frozen=True)
class LogEntry:
    id: str
    community_id: str
    at: datetime
    action: str
    target_kind: str
    target_id: str
    actor_user_id: str
    reason: str


class LogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, case: Case, action: str, actor: str, reason: str, at: datetime) -> None:
        await self.session.execute(
            moderation_log.insert().values(
                id=str(uuid.uuid4()),
                community_id=case.community_id,
                at=at,
                action=action,
                target_kind=case.target_kind,
                target_id=case.target_id,
                actor_user_id=actor,
                reason=reason,
            )
        )

    async def page(self, community_id: str, before: Position | None, limit: int) -> list[LogEntry]:
        """Newest first."""
        query = select(moderation_log).where(moderation_log.c.community_id == community_id)
        if before is not None:
            moment, entry_id = before
            query = query.where(
                or_(
                    moderation_log.c.at < moment,
                    and_(moderation_log.c.at == moment, moderation_log.c.id < entry_id),
                )
            )
        rows = await self.session.execute(
            query.order_by(moderation_log.c.at.desc(), moderation_log.c.id.desc()).limit(limit)
        )
        return [
            LogEntry(
                id=row.id,
                community_id=row.community_id,
                at=utc(row.at),
                action=row.action,
                target_kind=row.target_kind,
                target_id=row.target_id,
                actor_user_id=row.actor_user_id,
                reason=row.reason,
            )
            for row in rows
        ]


def _values(case: Case) -> dict[str, Any]:
    return {
        "community_id": case.community_id,
        "author_user_id": case.author_user_id,
        "status": case.status.value,
        "reason": case.reason,
        "actor_user_id": case.actor_user_id,
        "actor_role": case.actor_rank,
        "decided_at": case.decided_at,
        "appealed": case.appealed,
        "appeal_open": case.appeal_open,
        "appeal_statement": case.appeal_statement,
        "appealed_at": case.appealed_at,
        "queued_at": case.queued_at,
        "version": case.version,
        "open_reports": case.open_reports,
    }


def _case(row: Row[Any]) -> Case:
    return Case(
        target_kind=row.target_kind,
        target_id=row.target_id,
        community_id=row.community_id,
        author_user_id=row.author_user_id,
        status=Status(row.status),
        reason=row.reason,
        actor_user_id=row.actor_user_id,
        actor_rank=int(row.actor_role),
        decided_at=utc(row.decided_at),
        version=int(row.version),
        appealed=bool(row.appealed),
        appeal_open=bool(row.appeal_open),
        appeal_statement=row.appeal_statement,
        appealed_at=utc(row.appealed_at) if row.appealed_at is not None else None,
        queued_at=utc(row.queued_at) if row.queued_at is not None else None,
        open_reports=int(row.open_reports),
    )
