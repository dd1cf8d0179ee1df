"""gRPC edge of segments: named rules over a community's members, evaluated in the store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from services.kit.idempotency import IdempotentWriter
from services.kit.paging import check_page_size, page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from services.members.checkins.store import CheckinRepository
from services.members.communities import domain
from services.members.communities.access import community_for, require_role, require_writable
from services.members.communities.store import CommunityRepository
from services.members.personas.store import AttributeRepository
from services.members.segments import rules as segment_rules
from services.members.segments.rules import InvalidRule, Node, Segment
from services.members.segments.store import SegmentRepository, count_members, list_matching_members
from studyhall.members.v1 import profiles_service_pb2 as pb

SEGMENT_UPDATABLE = ("name", "description", "rule")
MAX_RULE_TEXT = 20_000


class SegmentsApi:
    def __init__(self, database: Database, writer: IdempotentWriter) -> None:
        self.database = database
        self.writer = writer

    async def CreateSegment(
        self, request: pb.CreateSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateSegmentResponse:
        caller = current_identity()
        problems = Violations()
        _check_segment_fields(problems, request.name, request.description, request.rule, "")
        problems.raise_if_any()

        async def create(session: AsyncSession) -> pb.CreateSegmentResponse:
            await _moderator_of(
                session, request.community_id, caller, "creating segments", writing=True
            )
            await _parse(session, request.community_id, request.rule, "rule")
            repository = SegmentRepository(session)
            if await repository.name_taken(request.community_id, request.name):
                raise _name_taken(request.name)
            now = datetime.now(UTC)
            segment = Segment(
                id=str(uuid.uuid4()),
                community_id=request.community_id,
                name=request.name,
                description=request.description,
                rule=request.rule,
                created_by_user_id=caller.user_id,
                created_at=now,
                updated_at=now,
            )
            await repository.add(segment)
            return pb.CreateSegmentResponse(segment=segment_to_proto(segment))

        return await self.writer.write(caller.user_id, request, pb.CreateSegmentResponse, create)

    async def UpdateSegment(
        self, request: pb.UpdateSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateSegmentResponse:
        caller = current_identity()
        new = request.segment
        paths = list(request.update_mask.paths)
        problems = Violations()
        problems.uuid("segment.community_id", new.community_id)
        problems.uuid("segment.id", new.id)
        if not paths:
            problems.add("update_mask", "name at least one field to change")
        for path in paths:
            if path not in SEGMENT_UPDATABLE:
                problems.add("update_mask", f"{path!r} cannot be changed; use {SEGMENT_UPDATABLE}")
        _check_segment_fields(
            problems,
            new.name if "name" in paths else None,
            new.description,
            new.rule if "rule" in paths else None,
            "segment.",
        )
        problems.raise_if_any()

        async def update(session: AsyncSession) -> pb.UpdateSegmentResponse:
            await _moderator_of(
                session, new.community_id, caller, "changing segments", writing=True
            )
            repository = SegmentRepository(session)
            current = await _segment(repository, new.community_id, new.id)
            if "rule" in paths:
                await _parse(session, new.community_id, new.rule, "segment.rule")
            if "name" in paths and await repository.name_taken(
                new.community_id, new.name, other_than=new.id
            ):
                raise _name_taken(new.name)
            changes = {path: getattr(new, path) for path in paths}
            changed = segment_rules.changed(current, changes, new.version, datetime.now(UTC))
            await repository.save(changed)
            return pb.UpdateSegmentResponse(segment=segment_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.UpdateSegmentResponse, update)

    async def DeleteSegment(
        self, request: pb.DeleteSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteSegmentResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("segment_id", request.segment_id)
        problems.raise_if_any()

        async def delete(session: AsyncSession) -> pb.DeleteSegmentResponse:
            await _moderator_of(
                session, request.community_id, caller, "deleting segments", writing=True
            )
            repository = SegmentRepository(session)
            segment = await _segment(repository, request.community_id, request.segment_id)
            await repository.delete(segment)
            return pb.DeleteSegmentResponse()

        return await self.writer.write(caller.user_id, request, pb.DeleteSegmentResponse, delete)

    async def GetSegment(
        self, request: pb.GetSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSegmentResponse:
        caller = current_identity()
        _check_ids(request.community_id, request.segment_id)
        async with self.database.read() as session:
            await _moderator_of(session, request.community_id, caller, "reading segments")
            segment = await _segment(
                SegmentRepository(session), request.community_id, request.segment_id
            )
        return pb.GetSegmentResponse(segment=segment_to_proto(segment))

    async def ListSegments(
        self, request: pb.ListSegmentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSegmentsResponse:
        caller = current_identity()
        problems = Violations()
        paging = read_page(problems, request, ["segments", request.community_id])
        problems.raise_if_any()
        async with self.database.read() as session:
            await _moderator_of(session, request.community_id, caller, "reading segments")
            found = await SegmentRepository(session).listing(
                request.community_id, after=paging.after, limit=paging.size + 1
            )
        page, token = page_of(found, paging, lambda segment: (segment.created_at, segment.id))
        return pb.ListSegmentsResponse(
            segments=[segment_to_proto(s) for s in page], next_page_token=token
        )

    async def PreviewSegment(
        self, request: pb.PreviewSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.PreviewSegmentResponse:
        caller = current_identity()
        problems = Violations()
        _check_rule_text(problems, "rule", request.rule)
        size = check_page_size(problems, request.page_size)
        problems.raise_if_any()
        async with self.database.read() as session:
            await _moderator_of(session, request.community_id, caller, "previewing segments")
            rule = await _parse(session, request.community_id, request.rule, "rule")
            count, members = await _evaluate(session, request.community_id, rule, size)
        return pb.PreviewSegmentResponse(
            member_count=count, user_ids=[user_id for _, user_id in members]
        )

    async def CountSegment(
        self, request: pb.CountSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CountSegmentResponse:
        caller = current_identity()
        _check_ids(request.community_id, request.segment_id)
        async with self.database.read() as session:
            await _moderator_of(session, request.community_id, caller, "counting segments")
            segment = await _segment(
                SegmentRepository(session), request.community_id, request.segment_id
            )
            rule = await _saved_rule(session, segment)
            count, _ = await _evaluate(session, segment.community_id, rule, 0)
        return pb.CountSegmentResponse(member_count=count)

    async def ListSegmentMembers(
        self, request: pb.ListSegmentMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSegmentMembersResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("segment_id", request.segment_id)
        check_page_size(problems, request.page_size)
        problems.raise_if_any()
        async with self.database.read() as session:
            await _moderator_of(session, request.community_id, caller, "listing segment members")
            segment = await _segment(
                SegmentRepository(session), request.community_id, request.segment_id
            )
            # A token is bound to the segment's version: a changed rule starts over.
            query = ["segment-members", segment.community_id, segment.id, str(segment.version)]
            token_problems = Violations()
            paging = read_page(token_problems, request, query)
            token_problems.raise_if_any()
            rule = await _saved_rule(session, segment)
            grace = (await CheckinRepository(session).settings(segment.community_id)).grace_days
            found = await list_matching_members(
                session,
                segment.community_id,
                rule,
                now=datetime.now(UTC),
                grace_days=grace,
                after=paging.after,
                limit=paging.size + 1,
            )
        page, token = page_of(found, paging, lambda member: member)
        return pb.ListSegmentMembersResponse(
            user_ids=[user_id for _, user_id in page], next_page_token=token
        )


def _name_taken(name: str) -> AlreadyExists:
    # Checked before writing; of two writers at once, the store's unique key lets one
    # through and the other runs again and finds the name taken.
    return AlreadyExists(f"a segment named {name!r} exists; choose another name")


async def _moderator_of(
    session: AsyncSession, community_id: str, caller: Identity, what: str, *, writing: bool = False
) -> domain.Community:
    communities = CommunityRepository(session)
    community = await community_for(communities, community_id, caller)
    await require_role(communities, community, caller, domain.Role.MODERATOR, what)
    if writing:
        require_writable(community, what)
    return community


async def _segment(repository: SegmentRepository, community_id: str, segment_id: str) -> Segment:
    segment = await repository.get(community_id, segment_id)
    if segment is None:
        raise NotFound(f"segment {segment_id} not found in community {community_id}")
    return segment


async def _parse(session: AsyncSession, community_id: str, text: str, field: str) -> Node:
    schema = await AttributeRepository(session).schema(community_id)
    try:
        return segment_rules.parse(text, segment_rules.fields_of(schema), root=field)
    except InvalidRule as invalid:
        raise InvalidArgument(
            [FieldViolation(problem.path, problem.message) for problem in invalid.problems]
        ) from None


async def _saved_rule(session: AsyncSession, segment: Segment) -> Node:
    schema = await AttributeRepository(session).schema(segment.community_id)
    try:
        return segment_rules.parse(segment.rule, segment_rules.fields_of(schema))
    except InvalidRule as invalid:
        # The schema moved on (an attribute was retired or its options changed).
        raise FailedPrecondition(
            f"segment {segment.id} no longer fits the community's attributes: {invalid}; "
            "update its rule"
        ) from None


async def _evaluate(
    session: AsyncSession, community_id: str, rule: Node, first: int
) -> tuple[int, list[tuple[datetime, str]]]:
    now = datetime.now(UTC)
    grace = (await CheckinRepository(session).settings(community_id)).grace_days
    count = await count_members(session, community_id, rule, now=now, grace_days=grace)
    members = []
    if first and count:
        members = await list_matching_members(
            session, community_id, rule, now=now, grace_days=grace, after=None, limit=first
        )
    return count, members


def _check_ids(community_id: str, segment_id: str) -> None:
    problems = Violations()
    problems.uuid("community_id", community_id)
    problems.uuid("segment_id", segment_id)
    problems.raise_if_any()


def _check_segment_fields(
    problems: Violations, name: str | None, description: str, rule: str | None, prefix: str
) -> None:
    if name is not None:
        problems.text(f"{prefix}name", name, max_length=80)
    problems.text(f"{prefix}description", description, required=False, max_length=500)
    if rule is not None:
        _check_rule_text(problems, f"{prefix}rule", rule)


def _check_rule_text(problems: Violations, field: str, rule: str) -> None:
    problems.text(field, rule, max_length=MAX_RULE_TEXT)


def segment_to_proto(segment: Segment) -> pb.Segment:
    return pb.Segment(
        id=segment.id,
        community_id=segment.community_id,
        name=segment.name,
        description=segment.description,
        rule=segment.rule,
        created_by_user_id=segment.created_by_user_id,
        create_time=timestamp(segment.created_at),
        update_time=timestamp(segment.updated_at),
        version=segment.version,
    )
