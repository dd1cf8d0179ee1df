"""The facts the members service publishes, staged in its outbox in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events.outbox import Staged
from services.kit.timestamps import timestamp, timestamp_or_none
from services.members.communities.domain import (
    Community,
    JoinRequest,
    Membership,
    Role,
    RulesVersion,
)
from services.members.store.outbox import OUTBOX
from studyhall.members.v1 import members_events_pb2 as events
from studyhall.members.v1 import members_service_pb2 as pb


class CommunityEvents:
    """The facts of communities and their memberships."""

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
                create_time=timestamp(community.created_at),
                time_zone=community.time_zone,
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
                time_zone=community.time_zone,
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
                archive_time=timestamp(community.archived_at),
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
                        join_time=timestamp(membership.joined_at),
                        muted_until=timestamp_or_none(membership.muted_until),
                    ),
                    membership.community_id,
                    membership_subject(membership),
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
                request_time=timestamp(request.created_at),
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
                review_time=timestamp(request.reviewed_at),
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
                muted_until=timestamp_or_none(membership.muted_until),
            ),
            community_id=membership.community_id,
            subject=membership_subject(membership),
        )

    async def member_left(self, membership: Membership) -> None:
        assert membership.left_at is not None
        await OUTBOX.add(
            self.session,
            events.MemberLeft(
                community_id=membership.community_id,
                user_id=membership.user_id,
                version=membership.version,
                leave_time=timestamp(membership.left_at),
            ),
            community_id=membership.community_id,
            subject=membership_subject(membership),
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
            subject=membership_subject(membership),
        )


def membership_subject(membership: Membership) -> str:
    return f"communities/{membership.community_id}/members/{membership.user_id}"
