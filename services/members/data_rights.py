"""A member's data rights: export everything held about them in a community, erase it.

Each area of the members service that keeps records about a member registers an exporter
(a section of the export document) and, when it holds anything to erase, an eraser. Both are
called inside the caller's transaction with (session, community_id, user_id). Later areas
(profiles, points, check-ins) add their sections by registering here:

    @exporter("profile")
    async def export_profile(session, community_id, user_id): ...

    @eraser("profile")
    async def erase_profile(session, community_id, user_id): ...

Erasure keeps what the community needs to stay safe and accountable: a running ban or
mute (user id and its end) and the audit log's entries.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import utc
from services.members.reports import Decision, Report
from services.members.store.repository import (
    CommunityRepository,
    InviteRepository,
    JoinRequestRepository,
    ReportRepository,
    audit_entries_about,
    delete_join_request,
)

Exporter = Callable[[AsyncSession, str, str], Awaitable[Any]]
Eraser = Callable[[AsyncSession, str, str], Awaitable[None]]

_EXPORTERS: dict[str, Exporter] = {}
_ERASERS: dict[str, Eraser] = {}

CONTENT_TYPE = "application/json"


def exporter(section: str) -> Callable[[Exporter], Exporter]:
    """Register `section` of the export document; its value must be JSON-serializable."""

    def register(function: Exporter) -> Exporter:
        if section in _EXPORTERS:
            raise ValueError(f"export section {section!r} is registered twice")
        _EXPORTERS[section] = function
        return function

    return register


def eraser(name: str) -> Callable[[Eraser], Eraser]:
    def register(function: Eraser) -> Eraser:
        if name in _ERASERS:
            raise ValueError(f"eraser {name!r} is registered twice")
        _ERASERS[name] = function
        return function

    return register


async def export_document(session: AsyncSession, community_id: str, user_id: str) -> bytes:
    document: dict[str, Any] = {
        "community_id": community_id,
        "user_id": user_id,
        "export_time": datetime.now(UTC).isoformat(),
    }
    for section, export in _EXPORTERS.items():
        document[section] = await export(session, community_id, user_id)
    return json.dumps(document, ensure_ascii=False, indent=2, default=_json_value).encode()


async def erase_all(session: AsyncSession, community_id: str, user_id: str) -> None:
    for erase in _ERASERS.values():
        await erase(session, community_id, user_id)


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _decision(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "resolution": decision.resolution.name.lower(),
        "resolver_user_id": decision.resolver_user_id,
        "note": decision.note,
        "until": _time(decision.until),
        "decide_time": _time(decision.decided_at),
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


# --- The members service's own records ---


@exporter("membership")
async def _export_membership(
    session: AsyncSession, community_id: str, user_id: str
) -> dict[str, Any] | None:
    membership = await CommunityRepository(session).membership(community_id, user_id)
    if membership is None:
        return None
    return {
        "role": membership.role.name.lower(),
        "active": membership.active,
        "join_time": _time(membership.joined_at),
        "leave_time": _time(membership.left_at),
        "muted_until": _time(membership.muted_until),
        "banned_until": _time(membership.banned_until),
        "accepted_rules_version": membership.accepted_rules_version,
        "version": membership.version,
    }


@exporter("join_request")
async def _export_join_request(
    session: AsyncSession, community_id: str, user_id: str
) -> dict[str, Any] | None:
    request = await JoinRequestRepository(session).get(community_id, user_id)
    if request is None:
        return None
    return {
        "answers": request.answers,
        "state": request.state.name.lower(),
        "create_time": _time(request.created_at),
        "review_time": _time(request.reviewed_at),
        "reason": request.reason,
        "accepted_rules_version": request.accepted_rules_version,
    }


@exporter("reports_filed")
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
            "create_time": _time(report.created_at),
            "decision": _decision(report.decision),
            "appeal_decision": _decision(report.appeal_decision),
        }
        for report in await ReportRepository(session).filed_by(community_id, user_id)
    ]


@exporter("reports_about_me")
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
            "create_time": _time(report.created_at),
            "decision": _decision(report.decision),
            "appeal": {
                "statement": report.appeal_statement,
                "appeal_time": _time(report.appealed_at),
                "decision": _decision(report.appeal_decision),
            }
            if report.appealed_at
            else None,
        }
        for report in await ReportRepository(session).about(community_id, user_id)
    ]


@exporter("invites_created")
async def _export_invites(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    return [
        {
            "invite_id": invite.id,
            "code_prefix": invite.code_prefix,
            "create_time": _time(invite.created_at),
            "expire_time": _time(invite.expires_at),
            "max_uses": invite.max_uses,
            "uses": invite.uses,
            "revoke_time": _time(invite.revoked_at),
        }
        for invite in await InviteRepository(session).created_by(community_id, user_id)
    ]


@exporter("moderation_of_me")
async def _export_audit(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    return [
        {
            "action": row.action,
            "actor_user_id": row.actor_user_id,
            "note": row.reason,
            "until": _time(utc(row.until)) if row.until else None,
            "create_time": _time(utc(row.created_at)),
        }
        for row in await audit_entries_about(session, community_id, user_id)
    ]


@eraser("join_request")
async def _erase_join_request(session: AsyncSession, community_id: str, user_id: str) -> None:
    await delete_join_request(session, community_id, user_id)


@eraser("reports")
async def _erase_report_writing(session: AsyncSession, community_id: str, user_id: str) -> None:
    await ReportRepository(session).redact_writing_of(community_id, user_id)


@eraser("invites")
async def _erase_invites(session: AsyncSession, community_id: str, user_id: str) -> None:
    await InviteRepository(session).revoke_all_by(community_id, user_id, datetime.now(UTC))
