"""The facts about recurring themes, staged in content's outbox in the caller's
transaction."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.outbox import OUTBOX
from services.content.themes.domain import Theme
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events


class ThemeEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def created(self, theme: Theme) -> None:
        assert theme.next_at is not None
        await self._add(
            theme,
            events.ThemeCreated(
                community_id=theme.community_id,
                theme_id=theme.id,
                author_user_id=theme.author_user_id,
                weekday=theme.weekday,
                local_time=theme.local_time,
                time_zone=theme.time_zone,
                first_time=timestamp(theme.next_at),
                version=theme.version,
            ),
        )

    async def published(self, theme: Theme, post_id: str, local_date: str, now: datetime) -> None:
        await self._add(
            theme,
            events.ThemePublished(
                community_id=theme.community_id,
                theme_id=theme.id,
                post_id=post_id,
                local_date=local_date,
                publish_time=timestamp(now),
            ),
        )

    async def missed(self, theme: Theme, local_date: str, reason: str) -> None:
        await self._add(
            theme,
            events.ThemeMissed(
                community_id=theme.community_id,
                theme_id=theme.id,
                local_date=local_date,
                reason=reason,
            ),
        )

    async def ended(self, theme: Theme, by: str, now: datetime) -> None:
        await self._add(
            theme,
            events.ThemeEnded(
                community_id=theme.community_id,
                theme_id=theme.id,
                ended_by_user_id=by,
                end_time=timestamp(now),
                version=theme.version,
            ),
        )

    async def _add(self, theme: Theme, event: Message) -> None:
        await OUTBOX.add(
            self.session,
            event,
            community_id=theme.community_id,
            subject=f"communities/{theme.community_id}/themes/{theme.id}",
        )
