"""The facts the members service publishes, staged in its outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.context import Context
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events.outbox import Outbox, Staged
from services.members.domain import (
    FOREVER,
    Action,
    Community,
    JoinRequest,
    Membership,
    Role,
    RulesVersion,
)
from services.members.reports import Report
from services.members.store.tables import outbox
from studyhall.members.v1 import members_events_pb2 as events
from studyhall.members.v1 import members_service_pb2 as pb

OUTBOX = Outbox(outbox, "members")


class MemberEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def community_created(self, community: Community) -> None:
        await OUTBOX.add(
            self.session,
            events.CommunityCreated(
                community_id=community.id,
                owner_user_id=community.owner_user_id,
                topic=community.topic,
                visibility=pb.Visibility.ValueType(community.visibility),
                join_policy=pb.JoinPolicy.ValueType(community.join_policy),
                version=community.version,
                create_time=_timestamp(community.created_at),
            ),
            community_id=community.id,
            subject=f"communities/{community.id}",
        )

    async def community_updated(self, community: Community, changed: list[str]) -> None:
        await OUTBOX.add(
            self.session,
            events.CommunityUpdated(
                community_id=community.id,
                version=community.version,
                changed_fields=changed,
                topic=community.topic,
                visibility=pb.Visibility.ValueType(community.visibility),
                join_policy=pb.JoinPolicy.ValueType(community.join_policy),
            ),
            community_id=community.id,
            subject=f"communities/{community.id}",
        )

    async def community_archived(self, community: Community) -> None:
        assert community.archived_at is not None
        await OUTBOX.add(
            self.session,
            events.CommunityArchived(
                community_id=community.id,
                version=community.version,
                archive_time=_timestamp(community.archived_at),
            ),
            community_id=community.id,
            subject=f"communities/{community.id}",
        )

    async def member_joined(self, membership: Membership) -> None:
        await self.members_joined([membership])

    async def members_joined(
        self, memberships: list[Membership], traces: Sequence[Context | None] = ()
    ) -> None:
        """`traces`: each membership's own trace, when several callers' joins commit
        together; by default the current one."""
        await OUTBOX.add_many(
            self.session,
            [
                Staged(
                    events.MemberJoined(
                        community_id=membership.community_id,
                        user_id=membership.user_id,
                        role=pb.Role.ValueType(membership.role),
                        version=membership.version,
                        join_time=_timestamp(membership.joined_at),
                        muted_until=_maybe(membership.muted_until),
                    ),
                    membership.community_id,
                    _membership_subject(membership),
                    trace=trace,
                )
                for membership, trace in zip(
                    memberships, traces or [None] * len(memberships), strict=True
                )
            ],
        )

    async def join_requested(self, request: JoinRequest, trace: Context | None = None) -> None:
        await OUTBOX.add(
            self.session,
            events.JoinRequested(
                community_id=request.community_id,
                user_id=request.user_id,
                request_time=_timestamp(request.created_at),
            ),
            community_id=request.community_id,
            subject=f"communities/{request.community_id}/join-requests/{request.user_id}",
            trace=trace,
        )

    async def join_request_rejected(self, request: JoinRequest) -> None:
        assert request.reviewed_at is not None
        await OUTBOX.add(
            self.session,
            events.JoinRequestRejected(
                community_id=request.community_id,
                user_id=request.user_id,
                reviewer_user_id=request.reviewer_user_id,
                review_time=_timestamp(request.reviewed_at),
            ),
            community_id=request.community_id,
            subject=f"communities/{request.community_id}/join-requests/{request.user_id}",
        )

    async def role_changed(self, membership: Membership, previous: Role, by: str) -> None:
        await OUTBOX.add(
            self.session,
            events.RoleChanged(
                community_id=membership.community_id,
                user_id=membership.user_id,
                role=pb.Role.ValueType(membership.role),
                previous_role=pb.Role.ValueType(previous),
                changed_by_user_id=by,
                version=membership.version,
                muted_until=_maybe(membership.muted_until),
            ),
            community_id=membership.community_id,
            subject=_membership_subject(membership),
        )

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
            event = events.MemberBanned(**base, by_user_id=by, ban_until=_maybe(until))
        elif action is Action.UNBAN:
            event = events.MemberUnbanned(**base, by_user_id=by)
        elif action is Action.MUTE:
            event = events.MemberMuted(
                **base, role=role, by_user_id=by, muted_until=_maybe(membership.muted_until)
            )
        else:
            event = events.MemberUnmuted(**base, role=role, by_user_id=by)
        await OUTBOX.add(
            self.session,
            event,
            community_id=membership.community_id,
            subject=_membership_subject(membership),
        )

    async def member_left(self, membership: Membership) -> None:
        assert membership.left_at is not None
        await OUTBOX.add(
            self.session,
            events.MemberLeft(
                community_id=membership.community_id,
                user_id=membership.user_id,
                version=membership.version,
                leave_time=_timestamp(membership.left_at),
            ),
            community_id=membership.community_id,
            subject=_membership_subject(membership),
        )

    async def rules_changed(self, community: Community, rules: RulesVersion) -> None:
        await OUTBOX.add(
            self.session,
            events.RulesChanged(
                community_id=community.id,
                rules_version=rules.version,
                version=community.version,
                changed_by_user_id=rules.author_user_id,
            ),
            community_id=community.id,
            subject=f"communities/{community.id}/rules",
        )

    async def rules_accepted(self, membership: Membership) -> None:
        await OUTBOX.add(
            self.session,
            events.RulesAccepted(
                community_id=membership.community_id,
                user_id=membership.user_id,
                rules_version=membership.accepted_rules_version,
            ),
            community_id=membership.community_id,
            subject=_membership_subject(membership),
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
                create_time=_timestamp(report.created_at),
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
                resolve_time=_timestamp(decision.decided_at),
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
                appeal_time=_timestamp(report.appealed_at),
            ),
            community_id=report.community_id,
            subject=_report_subject(report),
        )

    async def member_erased(self, membership: Membership, erased_at: datetime) -> None:
        await OUTBOX.add(
            self.session,
            events.MemberErased(
                community_id=membership.community_id,
                user_id=membership.user_id,
                version=membership.version,
                erase_time=_timestamp(erased_at),
            ),
            community_id=membership.community_id,
            subject=_membership_subject(membership),
        )


def _report_subject(report: Report) -> str:
    return f"communities/{report.community_id}/reports/{report.id}"


def _membership_subject(membership: Membership) -> str:
    return f"communities/{membership.community_id}/members/{membership.user_id}"


def _maybe(value: datetime | None) -> Timestamp | None:
    return _timestamp(value) if value is not None else None


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
