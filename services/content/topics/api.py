"""gRPC handlers for a community's topics (channels)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.topics import domain
from services.content.topics.events import TopicEvents
from services.content.topics.store import TopicRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import AlreadyExists, NotFound
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb


class TopicsApi:
    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def CreateTopic(
        self, request: pb.CreateTopicRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTopicResponse:
        caller = current_identity()
        problems = Violations()
        _check_fields(problems, request.name, request.description, domain.UPDATABLE)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "creating a topic", writable=True
        )

        async def create(session: AsyncSession) -> pb.CreateTopicResponse:
            topic = domain.new_topic(
                request.community_id,
                request.name,
                request.description,
                caller.user_id,
                datetime.now(UTC),
            )
            topics = TopicRepository(session)
            if await topics.name_taken(topic.community_id, topic.name_key):
                raise _taken(topic.name)
            await topics.add(topic)
            await TopicEvents(session).created(topic)
            return pb.CreateTopicResponse(topic=topic_to_proto(topic))

        return await self.writer.write(caller.user_id, request, pb.CreateTopicResponse, create)

    async def UpdateTopic(
        self, request: pb.UpdateTopicRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateTopicResponse:
        caller = current_identity()
        paths = sorted(set(request.update_mask.paths))
        problems = Violations()
        problems.uuid("topic_id", request.topic_id)
        if not paths:
            problems.add("update_mask", "name at least one field to change")
        for path in paths:
            if path not in domain.UPDATABLE:
                problems.add("update_mask", f"{path!r} cannot be changed; use {domain.UPDATABLE}")
        _check_fields(problems, request.topic.name, request.topic.description, paths, "topic.")
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "changing a topic", writable=True
        )
        changes: dict[str, Any] = {path: getattr(request.topic, path) for path in paths}

        async def change(session: AsyncSession) -> pb.UpdateTopicResponse:
            topics = TopicRepository(session)
            topic = await topics.get(request.community_id, request.topic_id, for_update=True)
            if topic is None:
                raise topic_not_found(request.topic_id, request.community_id)
            changed = domain.update(topic, changes, request.etag)
            if changed.name_key != topic.name_key and await topics.name_taken(
                topic.community_id, changed.name_key, other_than=topic.id
            ):
                raise _taken(changed.name)
            await topics.save(changed)
            await TopicEvents(session).updated(changed, caller.user_id, paths, datetime.now(UTC))
            return pb.UpdateTopicResponse(topic=topic_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.UpdateTopicResponse, change)

    async def ListTopics(
        self, request: pb.ListTopicsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTopicsResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["topics", request.community_id])
        problems.raise_if_any()
        await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            found = await TopicRepository(session).oldest_first(
                request.community_id, page.after, page.size + 1
            )
        topics, token = page_of(found, page, lambda topic: (topic.created_at, topic.id))
        return pb.ListTopicsResponse(
            topics=[topic_to_proto(topic) for topic in topics], next_page_token=token
        )


def _check_fields(
    problems: Violations, name: str, description: str, paths: Any, prefix: str = ""
) -> None:
    if "name" in paths:
        problems.text(f"{prefix}name", name, max_length=domain.NAME_MAX)
    if "description" in paths:
        problems.text(
            f"{prefix}description", description, required=False, max_length=domain.DESCRIPTION_MAX
        )


def _taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"a topic named {name!r} exists in this community; choose another name")


def topic_not_found(topic_id: str, community_id: str) -> NotFound:
    return NotFound(f"topic {topic_id} not found in community {community_id}")


def topic_to_proto(topic: domain.Topic) -> pb.Topic:
    return pb.Topic(
        id=topic.id,
        community_id=topic.community_id,
        name=topic.name,
        description=topic.description,
        create_time=timestamp(topic.created_at),
        version=topic.version,
        etag=topic.etag,
    )
