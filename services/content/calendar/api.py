"""gRPC handlers of the content calendar: scheduling drafts and reading what is planned,
published and missed, by local day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.calendar import domain
from services.content.calendar.publishing import PUBLISH
from services.content.calendar.store import posts_in_span
from services.content.posts.domain import Post, PostState
from services.content.posts.events import PostEvents
from services.content.posts.messages import present
from services.content.posts.ownership import own_post
from services.content.posts.store import PostRepository
from services.content.store.tables import scheduled_jobs
from services.kit.access import Access, Role
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import InvalidArgument
from services.kit.grouped_writes import Writer
from services.kit.schedule import Job, Jobs
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb

JOBS = Jobs(scheduled_jobs)


class CalendarApi:
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
        # Wakes this process's scheduler, so a post due soon goes live on time.
        self.scheduled = scheduled

    async def SchedulePost(
        self, request: pb.SchedulePostRequest, context: grpc.aio.ServicerContext
    ) -> pb.SchedulePostResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("post_id", request.post_id)
        local = domain.local_time(request.local_time)
        if local is None:
            problems.add("local_time", "must be a local date and time like 2027-01-04T09:00")
        named = domain.zone(request.time_zone) if request.time_zone else None
        if request.time_zone and named is None:
            problems.add("time_zone", f"{request.time_zone!r} is not an IANA time zone")
        problems.raise_if_any()
        assert local is not None
        await self.access.require_role(request.community_id, caller, Role.MEMBER, "scheduling")
        await self.access.require_writable(request.community_id, caller, "scheduling a post")
        where = named or await self._community_zone(request.community_id)
        when = domain.at(local, where)
        now = datetime.now(UTC)
        if when is None or when - now > domain.HORIZON:
            raise _invalid("local_time", f"must be within {domain.HORIZON.days} days")
        if when <= now:
            raise _invalid("local_time", f"{request.local_time} in {where.key} has passed")

        async def schedule(session: AsyncSession) -> pb.SchedulePostResponse:
            post = await own_post(session, request.community_id, request.post_id, caller)
            scheduled = domain.schedule(post, when)
            await PostRepository(session).save(scheduled)
            await JOBS.set(session, Job(PUBLISH, post.id, post.community_id, when))
            await PostEvents(session).scheduled(scheduled)
            [shown] = await present(session, [scheduled])
            return pb.SchedulePostResponse(post=shown)

        response = await self.writer.write(
            caller.user_id, request, pb.SchedulePostResponse, schedule
        )
        self.scheduled()
        return response

    async def UnschedulePost(
        self, request: pb.UnschedulePostRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnschedulePostResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("post_id", request.post_id)
        problems.raise_if_any()
        await self.access.require_role(request.community_id, caller, Role.MEMBER, "scheduling")
        await self.access.require_writable(request.community_id, caller, "unscheduling a post")

        async def unschedule(session: AsyncSession) -> pb.UnschedulePostResponse:
            post = await own_post(session, request.community_id, request.post_id, caller)
            unscheduled = domain.unschedule(post)
            await PostRepository(session).save(unscheduled)
            await JOBS.cancel(session, PUBLISH, post.id)
            await PostEvents(session).unscheduled(unscheduled)
            [shown] = await present(session, [unscheduled])
            return pb.UnschedulePostResponse(post=shown)

        return await self.writer.write(
            caller.user_id, request, pb.UnschedulePostResponse, unschedule
        )

    async def ListCalendar(
        self, request: pb.ListCalendarRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCalendarResponse:
        caller = current_identity()
        problems = Violations()
        first = domain.local_date(request.start_date)
        if first is None:
            problems.add("start_date", "must be a local date like 2027-01-04")
        named = domain.zone(request.time_zone) if request.time_zone else None
        if request.time_zone and named is None:
            problems.add("time_zone", f"{request.time_zone!r} is not an IANA time zone")
        problems.raise_if_any()
        assert first is not None
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "reading the content calendar"
        )
        where = named or await self._community_zone(request.community_id)
        span = domain.days_span(first, request.days or domain.DEFAULT_DAYS, where)
        if span is None:
            raise _invalid("start_date", "the days asked for run off the calendar")
        start, end = span
        async with self.database.read() as session:
            found = await posts_in_span(session, request.community_id, start, end)
        entries = sorted((_entry(post, where) for post in found), key=_entry_order)
        return pb.ListCalendarResponse(entries=entries)

    async def _community_zone(self, community_id: str) -> ZoneInfo:
        # A zone members accepted; a name this machine's zone data lacks falls back to UTC.
        return domain.zone(await self.access.time_zone(community_id)) or ZoneInfo("UTC")


def _entry(post: Post, where: ZoneInfo) -> pb.CalendarEntry:
    if post.state is PostState.PUBLISHED:
        assert post.published_at is not None
        status, moment = pb.CALENDAR_STATUS_PUBLISHED, post.published_at
    else:
        assert post.scheduled_at is not None
        status = pb.CALENDAR_STATUS_MISSED if post.missed_at else pb.CALENDAR_STATUS_PLANNED
        moment = post.scheduled_at
    return pb.CalendarEntry(
        post_id=post.id,
        title=post.title,
        kind=pb.PostKind.ValueType(post.kind),
        topic_id=post.topic_id or "",
        author_user_id=post.author_user_id,
        status=status,
        time=timestamp(moment),
        local_date=moment.astimezone(where).date().isoformat(),
        missed_reason=post.missed_reason,
    )


def _entry_order(entry: pb.CalendarEntry) -> tuple[int, int, str]:
    return entry.time.seconds, entry.time.nanos, entry.post_id


def _invalid(field: str, problem: str) -> InvalidArgument:
    return InvalidArgument.field(field, problem)
