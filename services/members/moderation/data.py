"""What moderation holds about a member (reports they filed, reports and actions about
them): export and erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.data_rights import Eraser, Exporter
from services.kit.database import utc
from services.members.communities.store import (
    audit_entries_about,
)
from services.members.moderation.reports import Decision, Report
from services.members.moderation.store import PostRepository, ReportRepository


def _decision(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "resolution": decision.resolution.name.lower(),
        "resolver_user_id": decision.resolver_user_id,
        "note": decision.note,
        "until": decision.until,
        "decide_time": decision.decided_at,
        "remove_content": decision.remove_content,
    }


def _target(report: Report) -> dict[str, Any]:
    if report.about_content:
        return {
            "service": report.target_service,
            "kind": report.target_kind,
            "id": report.target_id,
            "author_user_id": report.target_user_id,
        }
    return {"user_id": report.target_user_id}


async def _export_reports_filed(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    return [
        {
            "report_id": report.id,
            "target": _target(report),
            "reason": report.reason.name.lower(),
            "details": report.details,
            "evidence": report.evidence,
            "state": report.state.name.lower(),
            "create_time": report.created_at,
            "decision": _decision(report.decision),
            "appeal_decision": _decision(report.appeal_decision),
        }
        for report in await ReportRepository(session).filed_by(community_id, user_id)
    ]


async def _export_reports_about(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    # Who reported is not the reported member's to learn; what was decided and why is.
    return [
        {
            "report_id": report.id,
            "target": _target(report),
            "reason": report.reason.name.lower(),
            "state": report.state.name.lower(),
            "create_time": report.created_at,
            "decision": _decision(report.decision),
            "appeal": {
                "statement": report.appeal_statement,
                "appeal_time": report.appealed_at,
                "decision": _decision(report.appeal_decision),
            }
            if report.appealed_at
            else None,
        }
        for report in await ReportRepository(session).about(community_id, user_id)
    ]


async def _export_audit(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    return [
        {
            "action": row.action,
            "actor_user_id": row.actor_user_id,
            "note": row.reason,
            "until": utc(row.until) if row.until else None,
            "create_time": utc(row.created_at),
        }
        for row in await audit_entries_about(session, community_id, user_id)
    ]


async def _erase_report_writing(session: AsyncSession, community_id: str, user_id: str) -> None:
    await ReportRepository(session).redact_writing_of(community_id, user_id)


async def _export_posts(session: AsyncSession, community_id: str, user_id: str) -> list[str]:
    # What members holds of the member's posts: their ids, from content's facts.
    return await PostRepository(session).written_by(community_id, user_id)


async def _erase_post_authorship(session: AsyncSession, community_id: str, user_id: str) -> None:
    await PostRepository(session).forget_author(community_id, user_id)


# The sections this capability adds to a member's export, and what erasure runs here.
EXPORTS: dict[str, Exporter] = {
    "reports_filed": _export_reports_filed,
    "reports_about_me": _export_reports_about,
    "moderation_of_me": _export_audit,
    "post_ids_written": _export_posts,
}
ERASERS: tuple[Eraser, ...] = (_erase_report_writing, _erase_post_authorship)
