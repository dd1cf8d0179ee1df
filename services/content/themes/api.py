"""gRPC handlers of recurring themes: admins start and end them, moderators list them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import grpc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.calendar.domain import zone
from services.content.posts.domain import PostKind
from services.content.store.tables import topics
from services.content.themes import domain
from services.content.themes.events import ThemeEvents
from services.content.themes.publishing import JOBS, PUBLISH_THEME, next_job
from services.content.themes.store import ThemeRepository
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import InvalidArgument
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp, timestamp_or_none
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb

# What a theme's posts may be: something written here, to read or to answer.
KINDS = (int(PostKind.ARTICLE), int(PostKind.QUESTION))


class ThemesApi:
    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        scheduled: Callable[[], None] = lambda: None,
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        # Wakes this process's scheduler, so an occurrence due soon goes live on time.
        self.scheduled = scheduled

    async def CreateTheme(
        self, request: pb.CreateThemeRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateThemeResponse:
        caller = current_identity()
        asked = request.theme
        problems = Violations()
        problems.text("theme.title", asked.title, max_length=domain.TITLE_MAX)
        problems.text("theme.body", asked.body, max_length=domain.BODY_MAX)
        problems.enum("theme.kind", asked.kind, KINDS, "post kind for a theme", required=True)
        problems.uuid("theme.topic_id", asked.topic_id, required=False)
        if not 1 <= asked.weekday <= 7:
            problems.add("theme.weekday", "must be an ISO weekday, 1 (Monday) to 7 (Sunday)")
        if domain.time_of_day(asked.local_time) is None:
            problems.add("theme.local_time", "must be a local time of day like 09:00")
        named = zone(asked.time_zone) if asked.time_zone else None
        if asked.time_zone and named is None:
            problems.add("theme.time_zone", f"{asked.time_zone!r} is not an IANA time zone")
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "starting a recurring theme", writable=True
        )
        where = named or await self._community_zone(request.community_id)

        async def create(session: AsyncSession) -> pb.CreateThemeResponse:
            if asked.topic_id and not await _topic_here(
                session, request.community_id, asked.topic_id
            ):
                raise InvalidArgument.field(
                    "theme.topic_id", f"no topic {asked.topic_id} in this community"
                )
            theme = domain.new_theme(
                community_id=request.community_id,
                title=asked.title,
                body=asked.body,
                kind=int(asked.kind),
                topic_id=asked.topic_id,
                weekday=asked.weekday,
                local_time=asked.local_time,
                where=where,
                author_user_id=caller.user_id,
                now=datetime.now(UTC),
            )
            await ThemeRepository(session).save(theme)
            await JOBS.set(session, next_job(theme))
            await ThemeEvents(session).created(theme)
            return pb.CreateThemeResponse(theme=theme_to_proto(theme))

        response = await self.writer.write(caller.user_id, request, pb.CreateThemeResponse, create)
        self.scheduled()
        return response

    async def ListThemes(
        self, request: pb.ListThemesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListThemesResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["themes", request.community_id])
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "reading the recurring themes"
        )
        async with self.database.read() as session:
            found = await ThemeRepository(session).oldest_first(
                request.community_id, page.after, page.size + 1
            )
        themes, token = page_of(found, page, lambda theme: (theme.created_at, theme.id))
        return pb.ListThemesResponse(
            themes=[theme_to_proto(theme) for theme in themes], next_page_token=token
        )

    async def EndTheme(
        self, request: pb.EndThemeRequest, context: grpc.aio.ServicerContext
    ) -> pb.EndThemeResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("theme_id", request.theme_id)
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "ending a recurring theme", writable=True
        )

        async def end(session: AsyncSession) -> pb.EndThemeResponse:
            repository = ThemeRepository(session)
            theme = await repository.get(request.community_id, request.theme_id, for_update=True)
            if theme is None:
                raise domain.theme_not_found(request.theme_id, request.community_id)
            ended = domain.end(theme)
            await repository.save(ended)
            await JOBS.cancel(session, PUBLISH_THEME, theme.job_key)
            await ThemeEvents(session).ended(ended, caller.user_id, datetime.now(UTC))
            return pb.EndThemeResponse(theme=theme_to_proto(ended))

        return await self.writer.write(caller.user_id, request, pb.EndThemeResponse, end)

    async def _community_zone(self, community_id: str) -> ZoneInfo:
        return zone(await self.access.time_zone(community_id)) or ZoneInfo("UTC")


async def _topic_here(session: AsyncSession, community_id: str, topic_id: str) -> bool:
    found = await session.scalar(
        select(topics.c.id).where(topics.c.community_id == community_id, topics.c.id == topic_id)
    )
    return found is not None


def theme_to_proto(theme: domain.Theme) -> pb.Theme:
    return pb.Theme(
        id=theme.id,
        community_id=theme.community_id,
        title=theme.title,
        body=theme.body,
        kind=pb.PostKind.ValueType(theme.kind),
        topic_id=theme.topic_id or "",
        weekday=theme.weekday,
        local_time=theme.local_time,
        time_zone=theme.time_zone,
        author_user_id=theme.author_user_id,
        active=theme.active,
        next_time=timestamp_or_none(theme.next_at),
        next_local_date=theme.next_local_date,
        published_count=theme.published_count,
        last_missed_reason=theme.last_missed_reason,
        create_time=timestamp(theme.created_at),
        version=theme.version,
        etag=theme.etag,
    )
