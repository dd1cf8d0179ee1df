"""gRPC edge of the members service: decode, validate, authorize, call, encode."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import current_identity
from services.kit.database import Database, utc
from services.kit.errors import AlreadyExists, NotFound
from services.kit.idempotency import IdempotentWriter
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp, timestamp_or_none
from services.kit.validation import Violations
from services.members.communities import domain, invites
from services.members.communities.access import community_for, require_role, require_writable
from services.members.communities.events import CommunityEvents
from services.members.communities.joins import JoinCommand, Joins
from services.members.communities.messages import (
    community_to_proto,
    join_request_to_proto,
    membership_to_proto,
)
from services.members.communities.store import (
    CommunityRepository,
    JoinRequestRepository,
    audit_entries,
    list_members,
    log_moderation,
)
from studyhall.members.v1 import members_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["MembersService"]
SERVICE_NAME = SERVICE.full_name


class CommunitiesApi:
    """Communities and their positioning, membership, join requests, roles, the roster and
    the audit log."""

    def __init__(self, database: Database, writer: IdempotentWriter) -> None:
        self.database = database
        self.writer = writer
        self.joins = Joins(database, writer)

    async def CreateCommunity(
        self, request: pb.CreateCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCommunityResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("name", request.name, max_length=120)
        problems.text("topic", request.topic, max_length=80)
        problems.text("mission", request.mission, required=False, max_length=2000)
        problems.text("audience", request.audience, required=False, max_length=500)
        problems.tags("tags", list(request.tags))
        if request.slug and not domain.SLUG_PATTERN.fullmatch(request.slug):
            problems.add("slug", "must be 1-64 lowercase ASCII letters, digits or inner '-'")
        problems.enum("visibility", request.visibility, domain.Visibility, "Visibility")
        problems.enum("join_policy", request.join_policy, domain.JoinPolicy, "JoinPolicy")
        _check_questions(problems, "join_questions", list(request.join_questions))
        problems.raise_if_any()

        async def create(session: AsyncSession) -> pb.CreateCommunityResponse:
            communities = CommunityRepository(session)
            community, owner = domain.new_community(
                name=request.name,
                topic=request.topic,
                owner_user_id=caller.user_id,
                slug=request.slug,
                mission=request.mission,
                audience=request.audience,
                tags=list(request.tags),
                visibility=domain.Visibility(request.visibility) if request.visibility else None,
                join_policy=domain.JoinPolicy(request.join_policy) if request.join_policy else None,
                join_questions=list(request.join_questions),
            )
            if await communities.slug_taken(community.slug):
                raise AlreadyExists(
                    f"a community with slug {community.slug!r} already exists; choose another slug"
                )
            await communities.add(community)
            await communities.add_membership(owner)
            published = CommunityEvents(session)
            await published.community_created(community)
            await published.member_joined(owner)
            return pb.CreateCommunityResponse(community=community_to_proto(community))

        return await self.writer.write(caller.user_id, request, pb.CreateCommunityResponse, create)

    async def GetCommunity(
        self, request: pb.GetCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCommunityResponse:
        caller = current_identity()
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await communities.get(request.community_id)
            membership = (
                await communities.membership(community.id, caller.user_id) if community else None
            )
            # Only current members see a private community: not those who left or were banned.
            visible = community is not None and (
                community.visible_to_outsiders()
                or caller.operator
                or (membership is not None and membership.active)
            )
        if community is None or not visible:
            # A private community the caller does not belong to is indistinguishable from
            # one that does not exist: its existence is not the caller's to learn.
            raise NotFound(f"community {request.community_id} not found")
        return pb.GetCommunityResponse(community=community_to_proto(community))

    async def JoinCommunity(
        self, request: pb.JoinCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinCommunityResponse:
        caller = current_identity()
        problems = Violations()
        for index, answer in enumerate(request.answers):
            problems.text(f"answers[{index}]", answer, max_length=2000)
        if request.invite_code and not invites.CODE_PATTERN.fullmatch(request.invite_code):
            problems.add("invite_code", "is not an invite code (check the link you were given)")
        if request.accepted_rules_version < 0:
            problems.add("accepted_rules_version", "must not be negative")
        problems.raise_if_any()

        return await self.joins.join(JoinCommand.of(caller.user_id, request))

    async def LeaveCommunity(
        self, request: pb.LeaveCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.LeaveCommunityResponse:
        caller = current_identity()

        async def leave(session: AsyncSession) -> pb.LeaveCommunityResponse:
            communities = CommunityRepository(session)
            current = await communities.membership(request.community_id, caller.user_id)
            membership = domain.leave(current, request.community_id, caller.user_id)
            await communities.save_membership(membership)
            await CommunityEvents(session).member_left(membership)
            return pb.LeaveCommunityResponse(version=membership.version)

        return await self.writer.write(caller.user_id, request, pb.LeaveCommunityResponse, leave)

    async def UpdateCommunity(
        self, request: pb.UpdateCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateCommunityResponse:
        caller = current_identity()
        paths = list(request.update_mask.paths)
        new = request.community
        problems = Violations()
        problems.uuid("community.id", new.id)
        if not paths:
            problems.add("update_mask", "name at least one field to change")
        for path in paths:
            if path not in domain.UPDATABLE:
                problems.add("update_mask", f"{path!r} cannot be changed; use {domain.UPDATABLE}")
        _check_fields(problems, new, paths, prefix="community.")
        problems.raise_if_any()
        changes = _changes(new, paths)

        async def update(session: AsyncSession) -> pb.UpdateCommunityResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, new.id, caller)
            await require_role(communities, community, caller, domain.Role.ADMIN, "changing it")
            require_writable(community, "changing it")
            changed = domain.update(community, changes, request.etag)
            slug_changed = changed.slug != community.slug
            if slug_changed and await communities.slug_taken(changed.slug):
                raise AlreadyExists(f"slug {changed.slug!r} is taken; choose another slug")
            await communities.save(changed)
            await CommunityEvents(session).community_updated(changed, sorted(set(paths)))
            await log_moderation(
                session,
                community_id=changed.id,
                actor=caller.user_id,
                action="update_community",
                target="",
                reason="changed " + ", ".join(sorted(set(paths))),
            )
            return pb.UpdateCommunityResponse(community=community_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.UpdateCommunityResponse, update)

    async def ArchiveCommunity(
        self, request: pb.ArchiveCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.ArchiveCommunityResponse:
        caller = current_identity()

        async def archive(session: AsyncSession) -> pb.ArchiveCommunityResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(communities, community, caller, domain.Role.OWNER, "archiving it")
            archived = domain.archive(community, request.etag)
            await communities.save(archived)
            await CommunityEvents(session).community_archived(archived)
            await log_moderation(
                session,
                community_id=archived.id,
                actor=caller.user_id,
                action="archive_community",
                target="",
            )
            return pb.ArchiveCommunityResponse(community=community_to_proto(archived))

        return await self.writer.write(
            caller.user_id, request, pb.ArchiveCommunityResponse, archive
        )

    async def ListCommunities(
        self, request: pb.ListCommunitiesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCommunitiesResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("topic", request.topic, required=False, max_length=80)
        if request.tag:
            problems.tags("tag", [request.tag], max_count=1)
        paging = read_page(problems, request, (request.topic, request.tag))
        problems.raise_if_any()
        async with self.database.read() as session:
            found = await CommunityRepository(session).list_visible(
                caller.user_id,
                everything=caller.operator,
                topic=request.topic,
                tag=request.tag,
                after=paging.after,
                limit=paging.size + 1,
            )
        page, token = page_of(found, paging, lambda community: (community.created_at, community.id))
        return pb.ListCommunitiesResponse(
            communities=[community_to_proto(community) for community in page],
            next_page_token=token,
        )

    async def ListJoinRequests(
        self, request: pb.ListJoinRequestsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJoinRequestsResponse:
        caller = current_identity()
        problems = Violations()
        paging = read_page(problems, request, ("join-requests", request.community_id))
        problems.raise_if_any()
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "reviewing join requests"
            )
            found = await JoinRequestRepository(session).pending(
                community.id, after=paging.after, limit=paging.size + 1
            )
        page, token = page_of(found, paging, lambda item: (item.created_at, item.user_id))
        return pb.ListJoinRequestsResponse(
            join_requests=[join_request_to_proto(item) for item in page], next_page_token=token
        )

    async def ReviewJoinRequest(
        self, request: pb.ReviewJoinRequestRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReviewJoinRequestResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("user_id", request.user_id, max_length=200)
        problems.text("reason", request.reason, required=not request.approve, max_length=1000)
        problems.raise_if_any()

        async def decide(session: AsyncSession) -> pb.ReviewJoinRequestResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "reviewing join requests"
            )
            require_writable(community, "reviewing join requests")
            requests = JoinRequestRepository(session)
            current = await communities.membership(community.id, request.user_id)
            pending = await requests.get(community.id, request.user_id)
            reviewed, membership = domain.review(
                pending,
                community,
                current,
                reviewer=caller.user_id,
                approve=request.approve,
                reason=request.reason.strip(),
            )
            await requests.save(reviewed, was=domain.RequestState.PENDING)
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="approve_join_request" if request.approve else "reject_join_request",
                target=request.user_id,
                reason=reviewed.reason,
            )
            published = CommunityEvents(session)
            reply = pb.ReviewJoinRequestResponse(join_request=join_request_to_proto(reviewed))
            if membership is not None:
                await communities.save_membership(membership)
                await published.member_joined(membership)
                reply.membership.CopyFrom(membership_to_proto(membership, community.rules_version))
            else:
                await published.join_request_rejected(reviewed)
            return reply

        return await self.writer.write(
            caller.user_id, request, pb.ReviewJoinRequestResponse, decide
        )

    async def ChangeRole(
        self, request: pb.ChangeRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChangeRoleResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("user_id", request.user_id, max_length=200)
        problems.enum(
            "role",
            request.role,
            domain.ASSIGNABLE,
            "assignable Role (member, moderator, admin)",
            required=True,
        )
        problems.raise_if_any()

        async def change(session: AsyncSession) -> pb.ChangeRoleResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(communities, community, caller, domain.Role.ADMIN, "changing roles")
            require_writable(community, "changing roles")
            actor = await communities.membership(community.id, caller.user_id)
            target = await communities.membership(community.id, request.user_id)
            changed = domain.change_role(
                None if caller.operator else actor, target, domain.Role(request.role)
            )
            assert target is not None
            await communities.save_membership(changed)
            await CommunityEvents(session).role_changed(changed, target.role, caller.user_id)
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="change_role",
                target=changed.user_id,
                reason=f"{target.role.name.lower()} -> {changed.role.name.lower()}",
            )
            return pb.ChangeRoleResponse(
                membership=membership_to_proto(changed, community.rules_version)
            )

        return await self.writer.write(caller.user_id, request, pb.ChangeRoleResponse, change)

    async def TransferOwnership(
        self, request: pb.TransferOwnershipRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransferOwnershipResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("new_owner_user_id", request.new_owner_user_id, max_length=200)
        problems.raise_if_any()

        async def transfer(session: AsyncSession) -> pb.TransferOwnershipResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.OWNER, "transferring ownership"
            )
            require_writable(community, "transferring ownership")
            owner = await communities.membership(community.id, community.owner_user_id)
            successor = await communities.membership(community.id, request.new_owner_user_id)
            assert owner is not None
            changed, old_owner, new_owner = domain.transfer(community, owner, successor)
            assert successor is not None
            await communities.save(changed)
            await communities.save_membership(old_owner)
            await communities.save_membership(new_owner)
            published = CommunityEvents(session)
            await published.role_changed(old_owner, domain.Role.OWNER, caller.user_id)
            await published.role_changed(new_owner, successor.role, caller.user_id)
            await published.community_updated(changed, ["owner_user_id"])
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="transfer_ownership",
                target=new_owner.user_id,
            )
            return pb.TransferOwnershipResponse(community=community_to_proto(changed))

        return await self.writer.write(
            caller.user_id, request, pb.TransferOwnershipResponse, transfer
        )

    async def ListAuditLog(
        self, request: pb.ListAuditLogRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAuditLogResponse:
        caller = current_identity()
        problems = Violations()
        paging = read_page(problems, request, ("audit", request.community_id), numeric=True)
        problems.raise_if_any()
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.ADMIN, "reading the audit log"
            )
            rows = await audit_entries(
                session, community.id, before=paging.after_number, limit=paging.size + 1
            )
        page, token = page_of(rows, paging, lambda row: (utc(row.created_at), str(row.id)))
        return pb.ListAuditLogResponse(
            entries=[
                pb.AuditEntry(
                    action=row.action,
                    actor_user_id=row.actor_user_id,
                    target_user_id=row.target_user_id,
                    note=row.reason,
                    until=timestamp_or_none(utc(row.until) if row.until else None),
                    create_time=timestamp(utc(row.created_at)),
                )
                for row in page
            ],
            next_page_token=token,
        )

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMembersResponse:
        caller = current_identity()
        problems = Violations()
        query = ("members", request.community_id, str(request.rules_pending))
        paging = read_page(problems, request, query)
        problems.raise_if_any()
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "listing members"
            )
            rows = await list_members(
                session,
                community,
                rules_pending=request.rules_pending,
                after=paging.after,
                limit=paging.size + 1,
            )
        page, token = page_of(rows, paging, lambda row: (row.joined_at, row.user_id))
        return pb.ListMembersResponse(
            members=[membership_to_proto(row, community.rules_version) for row in page],
            next_page_token=token,
        )


def _check_fields(
    problems: Violations, community: pb.Community, paths: list[str], *, prefix: str
) -> None:
    """Validate the fields a request sets; `paths` limits it to those (None: all)."""
    checks = {
        "name": lambda: problems.text(prefix + "name", community.name, max_length=120),
        "topic": lambda: problems.text(prefix + "topic", community.topic, max_length=80),
        "mission": lambda: problems.text(
            prefix + "mission", community.mission, required=False, max_length=2000
        ),
        "audience": lambda: problems.text(
            prefix + "audience", community.audience, required=False, max_length=500
        ),
        "tags": lambda: problems.tags(prefix + "tags", list(community.tags)),
        "slug": lambda: (
            None
            if domain.SLUG_PATTERN.fullmatch(community.slug)
            else problems.add(
                prefix + "slug", "must be 1-64 lowercase ASCII letters, digits or inner '-'"
            )
        ),
        "visibility": lambda: problems.enum(
            prefix + "visibility",
            community.visibility,
            domain.Visibility,
            "Visibility",
            required=True,
        ),
        "join_policy": lambda: problems.enum(
            prefix + "join_policy",
            community.join_policy,
            domain.JoinPolicy,
            "JoinPolicy",
            required=True,
        ),
        "locale": lambda: (
            None
            if domain.LOCALE_PATTERN.fullmatch(community.locale) or not community.locale
            else problems.add(
                prefix + "locale", "must be a BCP 47 language tag such as en or zh-Hans"
            )
        ),
        "time_zone": lambda: (
            None
            if not community.time_zone or domain.is_time_zone(community.time_zone)
            else problems.add(
                prefix + "time_zone", "must be an IANA time zone such as Asia/Shanghai"
            )
        ),
    }
    checks["join_questions"] = lambda: _check_questions(
        problems, prefix + "join_questions", list(community.join_questions)
    )
    for path in dict.fromkeys(paths):
        if path in checks:
            checks[path]()


def _changes(community: pb.Community, paths: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": community.name.strip(),
        "slug": community.slug,
        "topic": community.topic.strip(),
        "mission": community.mission.strip(),
        "audience": community.audience.strip(),
        "tags": list(community.tags),
        "visibility": domain.Visibility(community.visibility) if community.visibility else None,
        "join_policy": domain.JoinPolicy(community.join_policy) if community.join_policy else None,
        "locale": community.locale,
        "time_zone": community.time_zone,
        "join_questions": [question.strip() for question in community.join_questions],
    }
    return {path: values[path] for path in paths}


def _check_questions(problems: Violations, field: str, questions: list[str]) -> None:
    if len(questions) > domain.MAX_JOIN_QUESTIONS:
        problems.add(field, f"at most {domain.MAX_JOIN_QUESTIONS} questions")
    for index, question in enumerate(questions):
        problems.text(f"{field}[{index}]", question, max_length=300)
