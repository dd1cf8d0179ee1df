"""gRPC edge of the members service: decode, validate, authorize, call, encode."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any, TypeVar

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import current_identity
from services.kit.database import Database, utc
from services.kit.errors import (
    AlreadyExists,
    NotFound,
)
from services.kit.idempotency import IdempotencyKey, IdempotentWriter
from services.kit.validation import Violations
from services.members import domain, invites, page_tokens
from services.members.api_data_rights import DataRightsApi
from services.members.api_invites import InvitesAndRulesApi
from services.members.api_reports import ReportsApi
from services.members.convert import (
    ApiBase,
    community_to_proto,
    join_request_to_proto,
    membership_to_proto,
    save_community,
)
from services.members.joins import JoinCommand, Joins
from services.members.standing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    apply,
    community_for,
    require_role,
    timestamp,
)
from services.members.store.events import MemberEvents
from services.members.store.repository import (
    CommunityRepository,
    JoinRequestRepository,
    audit_entries,
    log_moderation,
)
from services.members.store.tables import idempotency_keys
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc

T = TypeVar("T")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MembersService"].full_name


_save = save_community
_to_proto = community_to_proto


class MembersApi(
    InvitesAndRulesApi,
    ReportsApi,
    DataRightsApi,
    ApiBase,
    pb_grpc.MembersServiceServicer,
):
    def __init__(self, database: Database, on_commit: Callable[[], None] = lambda: None) -> None:
        self.database = database
        self.idempotent = IdempotentWriter(database, idempotency_keys)
        self.joins = Joins(database, self.idempotent, on_commit)
        # Called after a transaction that staged events commits: wakes the relay.
        self.on_commit = on_commit

    async def CreateCommunity(
        self, request: pb.CreateCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCommunityResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
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
            published = MemberEvents(session)
            await published.community_created(community)
            await published.member_joined(owner)
            return pb.CreateCommunityResponse(community=_to_proto(community))

        key = IdempotencyKey(caller.user_id, "CreateCommunity", request.request_id)
        response = await self.idempotent.run(key, request, pb.CreateCommunityResponse, create)
        self.on_commit()
        return response

    async def GetCommunity(
        self, request: pb.GetCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCommunityResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        problems.raise_if_any()
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
        return pb.GetCommunityResponse(community=_to_proto(community))

    async def JoinCommunity(
        self, request: pb.JoinCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.JoinCommunityResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
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
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.raise_if_any()

        async def leave(session: AsyncSession) -> pb.LeaveCommunityResponse:
            communities = CommunityRepository(session)
            current = await communities.membership(request.community_id, caller.user_id)
            membership = apply(lambda: domain.leave(current, request.community_id, caller.user_id))
            await communities.save_membership(membership)
            await MemberEvents(session).member_left(membership)
            return pb.LeaveCommunityResponse(version=membership.version)

        key = IdempotencyKey(caller.user_id, "LeaveCommunity", request.request_id)
        response = await self.idempotent.run(key, request, pb.LeaveCommunityResponse, leave)
        self.on_commit()
        return response

    async def UpdateCommunity(
        self, request: pb.UpdateCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateCommunityResponse:
        caller = current_identity()
        paths = list(request.update_mask.paths)
        new = request.community
        problems = Violations()
        problems.request_id(request.request_id)
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
            changed = apply(lambda: domain.update(community, changes, request.etag))
            slug_changed = changed.slug != community.slug
            if slug_changed and await communities.slug_taken(changed.slug):
                raise AlreadyExists(f"slug {changed.slug!r} is taken; choose another slug")
            await _save(communities, changed)
            await MemberEvents(session).community_updated(changed, sorted(set(paths)))
            await log_moderation(
                session,
                community_id=changed.id,
                actor=caller.user_id,
                action="update_community",
                target="",
                reason="changed " + ", ".join(sorted(set(paths))),
            )
            return pb.UpdateCommunityResponse(community=_to_proto(changed))

        key = IdempotencyKey(caller.user_id, "UpdateCommunity", request.request_id)
        response = await self.idempotent.run(key, request, pb.UpdateCommunityResponse, update)
        self.on_commit()
        return response

    async def ArchiveCommunity(
        self, request: pb.ArchiveCommunityRequest, context: grpc.aio.ServicerContext
    ) -> pb.ArchiveCommunityResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.raise_if_any()

        async def archive(session: AsyncSession) -> pb.ArchiveCommunityResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(communities, community, caller, domain.Role.OWNER, "archiving it")
            archived = apply(lambda: domain.archive(community, request.etag))
            await _save(communities, archived)
            await MemberEvents(session).community_archived(archived)
            await log_moderation(
                session,
                community_id=archived.id,
                actor=caller.user_id,
                action="archive_community",
                target="",
            )
            return pb.ArchiveCommunityResponse(community=_to_proto(archived))

        key = IdempotencyKey(caller.user_id, "ArchiveCommunity", request.request_id)
        response = await self.idempotent.run(key, request, pb.ArchiveCommunityResponse, archive)
        self.on_commit()
        return response

    async def ListCommunities(
        self, request: pb.ListCommunitiesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCommunitiesResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("topic", request.topic, required=False, max_length=80)
        if request.tag:
            problems.tags("tag", [request.tag], max_count=1)
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            problems.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
        query = (request.topic, request.tag)
        after = None
        if request.page_token:
            after = page_tokens.decode(request.page_token, query)
            if after is None:
                problems.add("page_token", "is not a token this query returned; start without it")
        problems.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        async with self.database.read() as session:
            found = await CommunityRepository(session).list_visible(
                caller.user_id,
                everything=caller.operator,
                topic=request.topic,
                tag=request.tag,
                after=after,
                limit=size + 1,
            )
        page, more = found[:size], len(found) > size
        last = page[-1] if page else None
        return pb.ListCommunitiesResponse(
            communities=[_to_proto(community) for community in page],
            next_page_token=page_tokens.encode((last.created_at, last.id), query)
            if more and last
            else "",
        )

    async def ListJoinRequests(
        self, request: pb.ListJoinRequestsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJoinRequestsResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            problems.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
        query = ("join-requests", request.community_id)
        after = page_tokens.decode(request.page_token, query) if request.page_token else None
        if request.page_token and after is None:
            problems.add("page_token", "is not a token this query returned; start without it")
        problems.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "reviewing join requests"
            )
            found = await JoinRequestRepository(session).pending(
                community.id, after=after, limit=size + 1
            )
        page, more = found[:size], len(found) > size
        last = page[-1] if page else None
        return pb.ListJoinRequestsResponse(
            join_requests=[join_request_to_proto(item) for item in page],
            next_page_token=page_tokens.encode((last.created_at, last.user_id), query)
            if more and last
            else "",
        )

    async def ReviewJoinRequest(
        self, request: pb.ReviewJoinRequestRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReviewJoinRequestResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.text("user_id", request.user_id, max_length=200)
        problems.text("reason", request.reason, required=not request.approve, max_length=1000)
        problems.raise_if_any()

        async def decide(session: AsyncSession) -> pb.ReviewJoinRequestResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "reviewing join requests"
            )
            requests = JoinRequestRepository(session)
            current = await communities.membership(community.id, request.user_id)
            pending = await requests.get(community.id, request.user_id)
            reviewed, membership = apply(
                lambda: domain.review(
                    pending,
                    community,
                    current,
                    reviewer=caller.user_id,
                    approve=request.approve,
                    reason=request.reason.strip(),
                )
            )
            await requests.save(reviewed)
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="approve_join_request" if request.approve else "reject_join_request",
                target=request.user_id,
                reason=reviewed.reason,
            )
            published = MemberEvents(session)
            reply = pb.ReviewJoinRequestResponse(join_request=join_request_to_proto(reviewed))
            if membership is not None:
                await communities.save_membership(membership)
                await published.member_joined(membership)
                reply.membership.CopyFrom(membership_to_proto(membership, community.rules_version))
            else:
                await published.join_request_rejected(reviewed)
            return reply

        key = IdempotencyKey(caller.user_id, "ReviewJoinRequest", request.request_id)
        response = await self.idempotent.run(key, request, pb.ReviewJoinRequestResponse, decide)
        self.on_commit()
        return response

    async def ChangeRole(
        self, request: pb.ChangeRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChangeRoleResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
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
            actor = await communities.membership(community.id, caller.user_id)
            target = await communities.membership(community.id, request.user_id)
            changed = apply(
                lambda: domain.change_role(
                    None if caller.operator else actor, target, domain.Role(request.role)
                )
            )
            assert target is not None
            await communities.save_membership(changed)
            await MemberEvents(session).role_changed(changed, target.role, caller.user_id)
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

        key = IdempotencyKey(caller.user_id, "ChangeRole", request.request_id)
        response = await self.idempotent.run(key, request, pb.ChangeRoleResponse, change)
        self.on_commit()
        return response

    async def TransferOwnership(
        self, request: pb.TransferOwnershipRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransferOwnershipResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.text("new_owner_user_id", request.new_owner_user_id, max_length=200)
        problems.raise_if_any()

        async def transfer(session: AsyncSession) -> pb.TransferOwnershipResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.OWNER, "transferring ownership"
            )
            owner = await communities.membership(community.id, community.owner_user_id)
            successor = await communities.membership(community.id, request.new_owner_user_id)
            assert owner is not None
            changed, old_owner, new_owner = apply(
                lambda: domain.transfer(community, owner, successor)
            )
            assert successor is not None
            await _save(communities, changed)
            await communities.save_membership(old_owner)
            await communities.save_membership(new_owner)
            published = MemberEvents(session)
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
            return pb.TransferOwnershipResponse(community=_to_proto(changed))

        key = IdempotencyKey(caller.user_id, "TransferOwnership", request.request_id)
        response = await self.idempotent.run(key, request, pb.TransferOwnershipResponse, transfer)
        self.on_commit()
        return response

    async def ModerateMember(
        self, request: pb.ModerateMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModerateMemberResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.text("user_id", request.user_id, max_length=200)
        problems.enum("action", request.action, domain.Action, "ModerationAction", required=True)
        needs_reason = request.action in (
            pb.MODERATION_ACTION_REMOVE,
            pb.MODERATION_ACTION_BAN,
            pb.MODERATION_ACTION_MUTE,
        )
        problems.text("reason", request.reason, required=needs_reason, max_length=1000)
        if request.HasField("until") and request.action not in (
            pb.MODERATION_ACTION_BAN,
            pb.MODERATION_ACTION_MUTE,
        ):
            problems.add("until", "only bans and mutes have an end")
        if request.user_id == caller.user_id:
            problems.add("user_id", "you cannot moderate yourself")
        problems.raise_if_any()
        until = request.until.ToDatetime(tzinfo=UTC) if request.HasField("until") else None
        action = domain.Action(request.action)

        async def moderate(session: AsyncSession) -> pb.ModerateMemberResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.MODERATOR, "moderating members"
            )
            actor = (
                None
                if caller.operator
                else await communities.membership(community.id, caller.user_id)
            )
            target = await communities.membership(community.id, request.user_id)
            changed = apply(
                lambda: domain.moderate(community, actor, target, request.user_id, action, until)
            )
            await communities.save_membership(changed)
            await MemberEvents(session).moderated(changed, action, caller.user_id)
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action=action.name.lower(),
                target=request.user_id,
                reason=request.reason.strip(),
                until=until,
            )
            return pb.ModerateMemberResponse(
                membership=membership_to_proto(changed, community.rules_version)
            )

        key = IdempotencyKey(caller.user_id, "ModerateMember", request.request_id)
        response = await self.idempotent.run(key, request, pb.ModerateMemberResponse, moderate)
        self.on_commit()
        return response

    async def ListAuditLog(
        self, request: pb.ListAuditLogRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAuditLogResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            problems.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
        before: int | None = None
        if request.page_token:
            position = page_tokens.decode(request.page_token, ("audit", request.community_id))
            if position is None or not position[1].isdigit():
                problems.add("page_token", "is not a token this query returned; start without it")
            else:
                before = int(position[1])
        problems.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.ADMIN, "reading the audit log"
            )
            rows = await audit_entries(session, community.id, before=before, limit=size + 1)
        page, more = rows[:size], len(rows) > size
        return pb.ListAuditLogResponse(
            entries=[
                pb.AuditEntry(
                    action=row.action,
                    actor_user_id=row.actor_user_id,
                    target_user_id=row.target_user_id,
                    note=row.reason,
                    until=timestamp(utc(row.until)) if row.until else None,
                    create_time=timestamp(utc(row.created_at)),
                )
                for row in page
            ],
            next_page_token=page_tokens.encode(
                (utc(page[-1].created_at), str(page[-1].id)), ("audit", request.community_id)
            )
            if more
            else "",
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
