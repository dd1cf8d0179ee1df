"""The facts about activities, staged in the events service's outbox in the caller's
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity
from services.events.store.outbox import OUTBOX
from services.kit.events.outbox import Staged
from services.kit.timestamps import timestamp, timestamp_or_none
from studyhall.events.v1 import activities_events_pb2 as events
from studyhall.events.v1 import activities_service_pb2 as pb


def subject(activity: Activity) -> str:
    return f"communities/{activity.community_id}/activities/{activity.id}"


class ActivityEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def created(self, made: Sequence[Activity]) -> None:
        await OUTBOX.add_many(
            self.session,
            [
                Staged(
                    events.ActivityCreated(
                        activity_id=activity.id,
                        community_id=activity.community_id,
                        host_user_id=activity.host_user_id,
                        kind=pb.ActivityKind.ValueType(activity.kind),
                        start_time=timestamp(activity.start_time),
                        end_time=timestamp_or_none(activity.end_time),
                        capacity=activity.capacity,
                        version=activity.version,
                        create_time=timestamp(activity.created_at),
                        series_id=activity.series_id or "",
                    ),
                    activity.community_id,
                    subject(activity),
                )
                for activity in made
            ],
        )

    async def updated(
        self, activity: Activity, changed: Sequence[str], by: str, now: datetime
    ) -> None:
        await self._add(
            activity,
            events.ActivityUpdated(
                activity_id=activity.id,
                community_id=activity.community_id,
                host_user_id=activity.host_user_id,
                kind=pb.ActivityKind.ValueType(activity.kind),
                start_time=timestamp(activity.start_time),
                end_time=timestamp_or_none(activity.end_time),
                capacity=activity.capacity,
                version=activity.version,
                changed_fields=list(changed),
                updated_by_user_id=by,
                update_time=timestamp(now),
            ),
        )

    async def cancelled(self, activity: Activity, by: str) -> None:
        assert activity.cancelled_at is not None
        await self._add(
            activity,
            events.ActivityCancelled(
                activity_id=activity.id,
                community_id=activity.community_id,
                host_user_id=activity.host_user_id,
                kind=pb.ActivityKind.ValueType(activity.kind),
                start_time=timestamp(activity.start_time),
                end_time=timestamp_or_none(activity.end_time),
                capacity=activity.capacity,
                version=activity.version,
                cancelled_by_user_id=by,
                cancel_time=timestamp(activity.cancelled_at),
            ),
        )

    async def retrospective_written(self, activity: Activity, by: str, now: datetime) -> None:
        await self._add(
            activity,
            events.RetrospectiveWritten(
                activity_id=activity.id,
                community_id=activity.community_id,
                written_by_user_id=by,
                write_time=timestamp(now),
            ),
        )

    async def _add(self, activity: Activity, event: Message) -> None:
        await OUTBOX.add(
            self.session, event, community_id=activity.community_id, subject=subject(activity)
        )
