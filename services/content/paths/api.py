"""gRPC handlers that shape a community's learning paths: create, change, read, list."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.library.store import ResourceRepository
from services.content.paths import domain
from services.content.paths.events import PathEvents
from services.content.paths.messages import drafts_from_proto, path_to_proto
from services.content.paths.store import PathRepository
from services.content.posts.domain import PostState
from services.content.posts.store import posts_by_id
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import InvalidArgument
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb


class PathsApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def CreatePath(
        self, request: pb.CreatePathRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreatePathResponse:
        caller = current_identity()
        problems = Violations()
        _check(problems, request.path, domain.UPDATABLE, existing=())
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "creating a learning path", writable=True
        )
        drafts = drafts_from_proto(request.path.steps)

        async def create(session: AsyncSession) -> pb.CreatePathResponse:
            fields = domain.Fields(
                title=request.path.title,
                description=request.path.description,
                steps=domain.new_steps(drafts),
                prerequisites=tuple(request.path.prerequisite_path_ids),
                required_product_id=request.path.required_product_id,
            )
            path = domain.new_path(request.community_id, fields, caller.user_id, datetime.now(UTC))
            await _check_references(session, path, touched=domain.UPDATABLE)
            await PathRepository(session).save(path)
            await PathEvents(session).created(path)
            return pb.CreatePathResponse(path=path_to_proto(path))

        return await self.writer.write(caller.user_id, request, pb.CreatePathResponse, create)

    async def UpdatePath(
        self, request: pb.UpdatePathRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdatePathResponse:
        caller = current_identity()
        paths = sorted(set(request.update_mask.paths))
        problems = Violations()
        problems.uuid("path_id", request.path_id)
        if not paths:
            problems.add("update_mask", "name at least one field to change")
        for name in paths:
            if name not in domain.UPDATABLE:
                problems.add("update_mask", f"{name!r} cannot be changed; use {domain.UPDATABLE}")
        # Step ids are checked against the stored path below, once it is read.
        _check(problems, request.path, paths, existing=None)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "changing a learning path", writable=True
        )
        drafts = drafts_from_proto(request.path.steps)

        async def change(session: AsyncSession) -> pb.UpdatePathResponse:
            repository = PathRepository(session)
            path = await repository.get(request.community_id, request.path_id, for_update=True)
            if path is None:
                raise domain.path_not_found(request.path_id, request.community_id)
            steps = None
            if "steps" in paths:
                wrong = domain.step_problems(drafts, path.step_ids, "path.steps")
                if wrong:
                    raise InvalidArgument.field(*next(iter(wrong.items())))
                steps = domain.new_steps(drafts, path.step_ids)
            fields = domain.Fields(
                title=request.path.title if "title" in paths else None,
                description=request.path.description if "description" in paths else None,
                steps=steps,
                prerequisites=(
                    tuple(request.path.prerequisite_path_ids)
                    if "prerequisite_path_ids" in paths
                    else None
                ),
                required_product_id=(
                    request.path.required_product_id if "required_product_id" in paths else None
                ),
            )
            changed = domain.update(path, fields, request.etag, datetime.now(UTC))
            await _check_references(session, changed, touched=paths)
            await repository.save(changed)
            await PathEvents(session).updated(changed, caller.user_id, paths)
            return pb.UpdatePathResponse(path=path_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.UpdatePathResponse, change)

    async def GetPath(
        self, request: pb.GetPathRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPathResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("path_id", request.path_id)
        problems.raise_if_any()
        await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            path = await PathRepository(session).get(request.community_id, request.path_id)
        if path is None:
            raise domain.path_not_found(request.path_id, request.community_id)
        return pb.GetPathResponse(path=path_to_proto(path))

    async def ListPaths(
        self, request: pb.ListPathsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPathsResponse:
        caller = current_identity()
        problems = Violations()
        query = ["paths", request.community_id]
        if request.recommended_to_me:
            query += ["recommended", caller.user_id]
        page = read_page(problems, request, query)
        problems.raise_if_any()
        await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            found = await PathRepository(session).oldest_first(
                request.community_id,
                page.after,
                page.size + 1,
                recommended_to=caller.user_id if request.recommended_to_me else None,
            )
        paths, token = page_of(found, page, lambda path: (path.created_at, path.id))
        return pb.ListPathsResponse(
            paths=[path_to_proto(path) for path in paths], next_page_token=token
        )


def _check(
    problems: Violations,
    path: pb.LearningPath,
    touched: Sequence[str],
    *,
    existing: Sequence[str] | None,
) -> None:
    """The fields named in `touched`, each on its own; `existing`: the step ids that may be
    kept (None: not known yet, checked once the path is read)."""
    if "title" in touched:
        problems.text("path.title", path.title, max_length=domain.TITLE_MAX)
    if "description" in touched:
        problems.text(
            "path.description", path.description, required=False, max_length=domain.DESCRIPTION_MAX
        )
    if "required_product_id" in touched:
        problems.text(
            "path.required_product_id",
            path.required_product_id,
            required=False,
            max_length=domain.PRODUCT_ID_MAX,
        )
        if path.required_product_id != path.required_product_id.strip():
            problems.add("path.required_product_id", "must not start or end with spaces")
    if "steps" in touched:
        drafts = drafts_from_proto(path.steps)
        known = existing if existing is not None else [d.id for d in drafts if d.id]
        for field, problem in domain.step_problems(drafts, known, "path.steps").items():
            problems.add(field, problem)
    if "prerequisite_path_ids" in touched:
        for index, prerequisite in enumerate(path.prerequisite_path_ids):
            problems.uuid(f"path.prerequisite_path_ids[{index}]", prerequisite)


async def _check_references(
    session: AsyncSession, path: domain.Path, touched: Sequence[str]
) -> None:
    """The posts the steps point at are published posts of the path's community, the
    resources resources of its library; the prerequisites are paths of it, never circular."""
    problems = Violations()
    if "steps" in touched:
        posts = await posts_by_id(session, [step.post_id for step in path.steps if step.post_id])
        resources = await ResourceRepository(session).by_id(
            path.community_id, [step.resource_id for step in path.steps if step.resource_id]
        )
        for index, step in enumerate(path.steps):
            post = posts.get(step.post_id)
            if step.kind is domain.StepKind.POST and (
                post is None
                or post.community_id != path.community_id
                or post.state is not PostState.PUBLISHED
            ):
                problems.add(
                    f"path.steps[{index}].post_id",
                    f"no published post {step.post_id} in this community",
                )
            if step.kind is domain.StepKind.RESOURCE and step.resource_id not in resources:
                problems.add(
                    f"path.steps[{index}].resource_id",
                    f"no resource {step.resource_id} in this community's library",
                )
    if "prerequisite_path_ids" in touched and path.prerequisites:
        graph = await PathRepository(session).prerequisite_graph(path.community_id)
        problem = domain.prerequisite_problems(
            path.id, path.prerequisites, graph, "path.prerequisite_path_ids"
        )
        if problem:
            problems.add("path.prerequisite_path_ids", problem)
    problems.raise_if_any()
