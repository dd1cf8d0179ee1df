"""The facts about the resource library, staged in content's outbox in the caller's
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.library.domain import Resource
from services.content.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events
from studyhall.content.v1 import content_service_pb2 as pb


class LibraryEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def added(self, resource: Resource) -> None:
        await self._add(
            resource,
            events.ResourceAdded(
                community_id=resource.community_id,
                resource_id=resource.id,
                added_by_user_id=resource.added_by,
                type=pb.ResourceType.ValueType(resource.type),
                level=pb.ResourceLevel.ValueType(resource.level),
                create_time=timestamp(resource.created_at),
                version=resource.version,
            ),
        )

    async def updated(self, resource: Resource, by: str, changed: Sequence[str]) -> None:
        assert resource.updated_at is not None
        await self._add(
            resource,
            events.ResourceUpdated(
                community_id=resource.community_id,
                resource_id=resource.id,
                updated_by_user_id=by,
                changed_fields=list(changed),
                update_time=timestamp(resource.updated_at),
                version=resource.version,
            ),
        )

    async def rated(
        self, resource: Resource, user_id: str, stars: int, previous: int, now: datetime
    ) -> None:
        await self._add(
            resource,
            events.ResourceRated(
                community_id=resource.community_id,
                resource_id=resource.id,
                user_id=user_id,
                stars=stars,
                previous_stars=previous,
                rate_time=timestamp(now),
            ),
        )

    async def saved(self, resource: Resource, user_id: str, now: datetime) -> None:
        await self._add(
            resource,
            events.ResourceSaved(
                community_id=resource.community_id,
                resource_id=resource.id,
                user_id=user_id,
                save_time=timestamp(now),
            ),
        )

    async def unsaved(self, resource: Resource, user_id: str, now: datetime) -> None:
        await self._add(
            resource,
            events.ResourceUnsaved(
                community_id=resource.community_id,
                resource_id=resource.id,
                user_id=user_id,
                unsave_time=timestamp(now),
            ),
        )

    async def _add(self, resource: Resource, event: Message) -> None:
        await OUTBOX.add(
            self.session,
            event,
            community_id=resource.community_id,
            subject=f"communities/{resource.community_id}/resources/{resource.id}",
        )
