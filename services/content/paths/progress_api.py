"""gRPC handlers of members' progress on learning paths: enrolling, marking steps done,
reading progress, and where enrolled members are stuck."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.paths import domain
from services.content.paths.events import PathEvents
from services.content.paths.messages import path_to_proto, progress_to_proto
from services.content.paths.store import EnrollmentRepository, PathRepository
from services.kit.access import Access, Role
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import NotFound, PermissionDenied
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb

# Whether a member holds an entitlement to a product of a community now (session,
# community_id, user_id, product_id): handed in by the paid-content capability.
Entitled = Callable[[AsyncSession, str, str, str], Awaitable[bool]]


async def _nobody_entitled(session: AsyncSession, community: str, user: str, product: str) -> bool:
    return False


class ProgressApi:
    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        entitled: Entitled = _nobody_entitled,
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        self.entitled = entitled

    async def EnrollInPath(
        self, request: pb.EnrollInPathRequest, context: grpc.aio.ServicerContext
    ) -> pb.EnrollInPathResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("path_id", request.path_id)
        problems.raise_if_any()
        standing = await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "enrolling in a path", writable=True
        )
        moderator = _moderator(caller, standing.role)

        async def enroll(session: AsyncSession) -> pb.EnrollInPathResponse:
            path = await _path(session, request.community_id, request.path_id)
            await self._require_entitlement(session, path, caller, moderator)
            enrollment = await _enrolled(session, path, caller.user_id)
            return pb.EnrollInPathResponse(progress=progress_to_proto(enrollment, path))

        return await self.writer.write(caller.user_id, request, pb.EnrollInPathResponse, enroll)

    async def CompletePathStep(
        self, request: pb.CompletePathStepRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompletePathStepResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("path_id", request.path_id)
        problems.uuid("step_id", request.step_id)
        problems.raise_if_any()
        standing = await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "completing a path step", writable=True
        )
        moderator = _moderator(caller, standing.role)

        async def complete(session: AsyncSession) -> pb.CompletePathStepResponse:
            path = await _path(session, request.community_id, request.path_id)
            await self._require_entitlement(session, path, caller, moderator)
            if path.step(request.step_id) is None:
                raise NotFound(f"step {request.step_id} not found in path {path.id}")
            enrollment = await _enrolled(session, path, caller.user_id)
            done, finished = domain.complete_step(
                enrollment, path, request.step_id, datetime.now(UTC)
            )
            if done is not enrollment:
                await EnrollmentRepository(session).save(done)
                events = PathEvents(session)
                await events.step_completed(done, path, request.step_id)
                if finished:
                    await events.completed(done)
            return pb.CompletePathStepResponse(progress=progress_to_proto(done, path))

        return await self.writer.write(
            caller.user_id, request, pb.CompletePathStepResponse, complete
        )

    async def GetPathProgress(
        self, request: pb.GetPathProgressRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPathProgressResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("path_id", request.path_id)
        problems.raise_if_any()
        whose = request.user_id or caller.user_id
        if whose == caller.user_id:
            await self.access.require_role(
                request.community_id, caller, Role.MEMBER, "reading your progress"
            )
        else:
            await self.access.require_role(
                request.community_id, caller, Role.MODERATOR, "reading a member's progress"
            )
        async with self.database.read() as session:
            path = await _path(session, request.community_id, request.path_id)
            enrollment = await EnrollmentRepository(session).get(path.community_id, path.id, whose)
        if enrollment is None:
            return pb.GetPathProgressResponse(
                progress=pb.PathProgress(
                    community_id=path.community_id,
                    path_id=path.id,
                    user_id=whose,
                    total_steps=len(path.steps),
                    next_step_id=path.steps[0].id if path.steps else "",
                )
            )
        return pb.GetPathProgressResponse(progress=progress_to_proto(enrollment, path))

    async def ListStuckMembers(
        self, request: pb.ListStuckMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListStuckMembersResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("path_id", request.path_id)
        problems.uuid("step_id", request.step_id, required=False)
        if not 1 <= request.idle_days <= domain.IDLE_DAYS_MAX:
            problems.add("idle_days", f"must be between 1 and {domain.IDLE_DAYS_MAX}")
        query = [
            "stuck",
            request.community_id,
            request.path_id,
            str(request.idle_days),
            request.step_id,
        ]
        page = read_page(problems, request, query)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "reading where members are stuck"
        )
        cutoff = datetime.now(UTC) - timedelta(days=request.idle_days)
        async with self.database.read() as session:
            path = await _path(session, request.community_id, request.path_id)
            idle = await EnrollmentRepository(session).idle(path.community_id, path.id, cutoff)
        if request.step_id and path.step(request.step_id) is None:
            raise NotFound(f"step {request.step_id} not found in path {path.id}")
        # Members who did every step of the path as it is now are not stuck on any step.
        on_step = [(e, e.next_step(path)) for e in idle if e.next_step(path)]
        counts = Counter(step for _, step in on_step)
        wanted = [
            (enrollment, step)
            for enrollment, step in on_step
            if not request.step_id or step == request.step_id
        ]
        if page.after is not None:
            after = page.after
            wanted = [
                item for item in wanted if (item[0].last_progress_at, item[0].user_id) > after
            ]
        members, token = page_of(
            wanted[: page.size + 1], page, lambda item: (item[0].last_progress_at, item[0].user_id)
        )
        return pb.ListStuckMembersResponse(
            members=[
                pb.StuckMember(
                    user_id=enrollment.user_id,
                    step_id=step,
                    completed_steps=len(enrollment.done(path)),
                    last_progress_time=timestamp(enrollment.last_progress_at),
                )
                for enrollment, step in members
            ],
            steps=(
                [
                    pb.StuckStep(step_id=step.id, members=counts[step.id])
                    for step in path.steps
                    if counts[step.id]
                ]
                if page.after is None
                else []
            ),
            next_page_token=token,
            path=path_to_proto(path),
        )

    async def _require_entitlement(
        self, session: AsyncSession, path: domain.Path, caller: Identity, moderator: bool
    ) -> None:
        product = path.required_product_id
        if not product or moderator or path.created_by == caller.user_id:
            return
        if not await self.entitled(session, path.community_id, caller.user_id, product):
            raise PermissionDenied(
                f"path {path.id} needs an entitlement to product {product}; you hold none now"
            )


def _moderator(caller: Identity, role: Role | None) -> bool:
    return caller.operator or (role is not None and role >= Role.MODERATOR)


async def _enrolled(session: AsyncSession, path: domain.Path, user_id: str) -> domain.Enrollment:
    """The member's enrollment in the path, made now (PathEnrolled) when there is none."""
    enrollments = EnrollmentRepository(session)
    enrollment = await enrollments.get(path.community_id, path.id, user_id)
    if enrollment is None:
        completed = await enrollments.completed_paths(
            path.community_id, user_id, path.prerequisites
        )
        enrollment = domain.enroll(path, user_id, completed, datetime.now(UTC))
        await enrollments.save(enrollment)
        await PathEvents(session).enrolled(enrollment)
    return enrollment


async def _path(session: AsyncSession, community_id: str, path_id: str) -> domain.Path:
    path = await PathRepository(session).get(community_id, path_id)
    if path is None:
        raise domain.path_not_found(path_id, community_id)
    return path
