"""gRPC handlers of the resource library: moderators curate, members rate and save, anyone
who may read the community browses by level, tag and rating."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.library import domain
from services.content.library.events import LibraryEvents
from services.content.library.store import (
    Browse,
    MemberMarks,
    ResourceRepository,
    score_position,
)
from services.content.posts.domain import is_web_url
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp, timestamp_or_none
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb


class LibraryApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def AddResource(
        self, request: pb.AddResourceRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddResourceResponse:
        caller = current_identity()
        problems = Violations()
        _check(problems, request.resource, domain.UPDATABLE)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "adding to the library", writable=True
        )

        async def add(session: AsyncSession) -> pb.AddResourceResponse:
            fields = {name: _field(request.resource, name) for name in domain.UPDATABLE}
            resource = domain.new_resource(
                request.community_id, fields, caller.user_id, datetime.now(UTC)
            )
            await ResourceRepository(session).save(resource)
            await LibraryEvents(session).added(resource)
            return pb.AddResourceResponse(resource=resource_to_proto(resource))

        return await self.writer.write(caller.user_id, request, pb.AddResourceResponse, add)

    async def UpdateResource(
        self, request: pb.UpdateResourceRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateResourceResponse:
        caller = current_identity()
        paths = sorted(set(request.update_mask.paths))
        problems = Violations()
        problems.uuid("resource_id", request.resource_id)
        if not paths:
            problems.add("update_mask", "name at least one field to change")
        for name in paths:
            if name not in domain.UPDATABLE:
                problems.add("update_mask", f"{name!r} cannot be changed; use {domain.UPDATABLE}")
        _check(problems, request.resource, [name for name in paths if name in domain.UPDATABLE])
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "changing the library", writable=True
        )
        changes = {name: _field(request.resource, name) for name in paths}

        async def change(session: AsyncSession) -> pb.UpdateResourceResponse:
            resources = ResourceRepository(session)
            resource = await _resource(resources, request.community_id, request.resource_id)
            changed = domain.update(resource, changes, request.etag, datetime.now(UTC))
            await resources.save(changed)
            await LibraryEvents(session).updated(changed, caller.user_id, paths)
            return pb.UpdateResourceResponse(resource=resource_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.UpdateResourceResponse, change)

    async def GetResource(
        self, request: pb.GetResourceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetResourceResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("resource_id", request.resource_id)
        problems.raise_if_any()
        await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            resource = await _resource(
                ResourceRepository(session), request.community_id, request.resource_id
            )
            [shown] = await _present(session, caller.user_id, [resource])
        return pb.GetResourceResponse(resource=shown)

    async def ListResources(
        self, request: pb.ListResourcesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListResourcesResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("level", request.level, [int(level) for level in domain.Level], "level")
        problems.enum("order", request.order, [1, 2], "order")
        if request.tag:
            problems.tags("tag", [request.tag], max_count=1)
        if not 0 <= request.min_rating <= 5:
            problems.add("min_rating", "must be between 1 and 5, or 0 for any")
        asked = Browse(
            level=request.level,
            tag=request.tag,
            min_rating=request.min_rating,
            top_rated=request.order == pb.RESOURCE_ORDER_TOP_RATED,
            saved_by=caller.user_id if request.saved_only else "",
        )
        query = [
            "resources",
            request.community_id,
            str(asked.level),
            asked.tag.casefold(),
            str(asked.min_rating),
            str(asked.top_rated),
            asked.saved_by,
        ]
        page = read_page(problems, request, query)
        problems.raise_if_any()
        await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            found = await ResourceRepository(session).browse(
                request.community_id, asked, page.after, page.size + 1
            )
            if asked.top_rated:
                items, token = page_of(found, page, lambda item: score_position(*item))
            else:
                items, token = page_of(found, page, lambda item: (item[0].created_at, item[0].id))
            shown = await _present(session, caller.user_id, [resource for resource, _ in items])
        return pb.ListResourcesResponse(resources=shown, next_page_token=token)

    async def RateResource(
        self, request: pb.RateResourceRequest, context: grpc.aio.ServicerContext
    ) -> pb.RateResourceResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("resource_id", request.resource_id)
        if request.stars not in domain.STARS:
            problems.add("stars", f"must be 1 to 5, got {request.stars}")
        problems.raise_if_any()
        await self.access.require_voice(
            request.community_id, caller, "rating a resource", writable=True
        )

        async def rate(session: AsyncSession) -> pb.RateResourceResponse:
            resources = ResourceRepository(session)
            resource = await _resource(resources, request.community_id, request.resource_id)
            marks = MemberMarks(session)
            previous, version = await marks.rating(resource.id, caller.user_id)
            if previous != request.stars:
                now = datetime.now(UTC)
                await marks.rate(resource, caller.user_id, request.stars, version + 1, now)
                await resources.move_rating(
                    resource.id, request.stars - previous, 0 if previous else 1
                )
                await LibraryEvents(session).rated(
                    resource, caller.user_id, request.stars, previous, now
                )
                resource = await _resource(resources, request.community_id, request.resource_id)
            [shown] = await _present(session, caller.user_id, [resource])
            return pb.RateResourceResponse(resource=shown)

        return await self.writer.write(caller.user_id, request, pb.RateResourceResponse, rate)

    async def SaveResource(
        self, request: pb.SaveResourceRequest, context: grpc.aio.ServicerContext
    ) -> pb.SaveResourceResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("resource_id", request.resource_id)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "saving a resource", writable=True
        )

        async def save(session: AsyncSession) -> pb.SaveResourceResponse:
            resource = await _resource(
                ResourceRepository(session), request.community_id, request.resource_id
            )
            now = datetime.now(UTC)
            if await MemberMarks(session).save(resource, caller.user_id, now):
                await LibraryEvents(session).saved(resource, caller.user_id, now)
            [shown] = await _present(session, caller.user_id, [resource])
            return pb.SaveResourceResponse(resource=shown)

        return await self.writer.write(caller.user_id, request, pb.SaveResourceResponse, save)

    async def UnsaveResource(
        self, request: pb.UnsaveResourceRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnsaveResourceResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("resource_id", request.resource_id)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "unsaving a resource", writable=True
        )

        async def unsave(session: AsyncSession) -> pb.UnsaveResourceResponse:
            resource = await _resource(
                ResourceRepository(session), request.community_id, request.resource_id
            )
            if await MemberMarks(session).unsave(resource.id, caller.user_id):
                await LibraryEvents(session).unsaved(resource, caller.user_id, datetime.now(UTC))
            [shown] = await _present(session, caller.user_id, [resource])
            return pb.UnsaveResourceResponse(resource=shown)

        return await self.writer.write(caller.user_id, request, pb.UnsaveResourceResponse, unsave)


def _check(problems: Violations, resource: pb.Resource, touched: Sequence[str]) -> None:
    if "title" in touched:
        problems.text("resource.title", resource.title, max_length=domain.TITLE_MAX)
    if "url" in touched:
        problems.text("resource.url", resource.url, max_length=domain.URL_MAX)
        if resource.url and len(resource.url) <= domain.URL_MAX and not is_web_url(resource.url):
            problems.add("resource.url", "must be an absolute http(s) URL")
    if "type" in touched:
        problems.enum(
            "resource.type",
            resource.type,
            [int(kind) for kind in domain.ResourceType],
            "resource type",
            required=True,
        )
    if "level" in touched:
        problems.enum(
            "resource.level",
            resource.level,
            [int(level) for level in domain.Level],
            "level",
            required=True,
        )
    if "tags" in touched:
        problems.tags("resource.tags", list(resource.tags))
    if "review" in touched:
        problems.text(
            "resource.review", resource.review, required=False, max_length=domain.REVIEW_MAX
        )


def _field(resource: pb.Resource, name: str) -> Any:
    value = getattr(resource, name)
    return list(value) if name == "tags" else value


async def _resource(
    resources: ResourceRepository, community_id: str, resource_id: str
) -> domain.Resource:
    resource = await resources.get(community_id, resource_id)
    if resource is None:
        raise domain.resource_not_found(resource_id, community_id)
    return resource


async def _present(
    session: AsyncSession, user_id: str, resources: Sequence[domain.Resource]
) -> list[pb.Resource]:
    stars, saved = await MemberMarks(session).of(user_id, [r.id for r in resources])
    return [
        resource_to_proto(resource, stars.get(resource.id, 0), resource.id in saved)
        for resource in resources
    ]


def resource_to_proto(
    resource: domain.Resource, my_rating: int = 0, saved: bool = False
) -> pb.Resource:
    return pb.Resource(
        id=resource.id,
        community_id=resource.community_id,
        title=resource.title,
        url=resource.url,
        type=pb.ResourceType.ValueType(resource.type),
        level=pb.ResourceLevel.ValueType(resource.level),
        tags=list(resource.tags),
        review=resource.review,
        added_by_user_id=resource.added_by,
        create_time=timestamp(resource.created_at),
        update_time=timestamp_or_none(resource.updated_at),
        rating_count=resource.rating_count,
        rating_average=resource.rating_average,
        my_rating=my_rating,
        saved=saved,
        version=resource.version,
        etag=resource.etag,
    )
