"""The facts of moderation: actions on members, reports and their decisions."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.timestamps import timestamp, timestamp_or_none
from services.members.communities.domain import FOREVER, Membership
from services.members.communities.events import membership_subject
from services.members.moderation.domain import Action
from services.members.moderation.reports import Report
from services.members.store.outbox import OUTBOX
from studyhall.members.v1 import members_events_pb2 as events
from studyhall.members.v1 import members_service_pb2 as pb


class ModerationEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def moderated(self, membership: Membership, action: Action, by: str) -> None:
        """The event for a moderator's action on `membership` (its state after the action)."""
        base: dict[str, Any] = {
            "community_id": membership.community_id,
            "user_id": membership.user_id,
            "version": membership.version,
        }
        role = pb.Role.ValueType(membership.role)
        event: Message
        if action is Action.REMOVE:
            event = events.MemberRemoved(**base, by_user_id=by)
        elif action is Action.BAN:
            until = None if membership.banned_until == FOREVER else membership.banned_until
            event = events.MemberBanned(**base, by_user_id=by, ban_until=timestamp_or_none(until))
        elif action is Action.UNBAN:
            event = events.MemberUnbanned(**base, by_user_id=by)
        elif action is Action.MUTE:
            event = events.MemberMuted(
                **base,
                role=role,
                by_user_id=by,
                muted_until=timestamp_or_none(membership.muted_until),
            )
        else:
            event = events.MemberUnmuted(**base, role=role, by_user_id=by)
        await OUTBOX.add(
            self.session,
            event,
            community_id=membership.community_id,
            subject=membership_subject(membership),
        )

    async def report_filed(self, report: Report) -> None:
        await OUTBOX.add(
            self.session,
            events.ReportFiled(
                report_id=report.id,
                community_id=report.community_id,
                reporter_user_id=report.reporter_user_id,
                target_user_id=report.target_user_id,
                target_service=report.target_service,
                target_kind=report.target_kind,
                target_id=report.target_id,
                reason=pb.ReportReason.ValueType(report.reason),
                version=report.version,
                create_time=timestamp(report.created_at),
            ),
            community_id=report.community_id,
            subject=_report_subject(report),
        )

    async def report_resolved(self, report: Report) -> None:
        decision = report.appeal_decision or report.decision
        assert decision is not None
        await OUTBOX.add(
            self.session,
            events.ReportResolved(
                report_id=report.id,
                community_id=report.community_id,
                resolution=pb.Resolution.ValueType(decision.resolution),
                resolver_user_id=decision.resolver_user_id,
                target_user_id=report.target_user_id,
                appeal=report.appeal_decision is not None,
                version=report.version,
                resolve_time=timestamp(decision.decided_at),
                remove_content=bool(report.decision and report.decision.remove_content),
                target_service=report.target_service,
                target_kind=report.target_kind,
                target_id=report.target_id,
            ),
            community_id=report.community_id,
            subject=_report_subject(report),
        )

    async def report_appealed(self, report: Report) -> None:
        assert report.appealed_at is not None
        await OUTBOX.add(
            self.session,
            events.ReportAppealed(
                report_id=report.id,
                community_id=report.community_id,
                user_id=report.target_user_id,
                version=report.version,
                appeal_time=timestamp(report.appealed_at),
            ),
            community_id=report.community_id,
            subject=_report_subject(report),
        )


def _report_subject(report: Report) -> str:
    return f"communities/{report.community_id}/reports/{report.id}"
