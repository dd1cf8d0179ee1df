"""gRPC edge of daily check-ins and streaks (CheckinsService)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import NotFound, PermissionDenied
from services.kit.idempotency import IdempotentWriter
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from services.members.checkins import domain as checkins
from services.members.checkins.domain import Checkin, Settings, Streak
from services.members.checkins.events import CheckinEvents
from services.members.checkins.store import CheckinRepository
from services.members.communities import domain
from services.members.communities.access import community_for, require_role, require_writable
from services.members.communities.store import CommunityRepository
from services.members.personas.store import profile_time_zone
from studyhall.members.v1 import checkins_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["CheckinsService"]
SERVICE_NAME = SERVICE.full_name


class CheckinsApi:
    def __init__(self, database: Database, writer: IdempotentWriter) -> None:
        self.database = database
        self.writer = writer

    async def CheckIn(
        self, request: pb.CheckInRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckInResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("note", request.note, required=False, max_length=checkins.MAX_NOTE)
        problems.raise_if_any()

        async def check_in(session: AsyncSession) -> pb.CheckInResponse:
            checkin, streak = await record_checkin(
                session, request.community_id, caller, request.note, now=datetime.now(UTC)
            )
            return pb.CheckInResponse(
                checkin=checkin_to_proto(checkin),
                streak=streak_to_proto(streak, checkin.time_zone, streak.current, today=True),
            )

        # Two check-ins of one day that race: the store lets one through, and the other
        # runs again and is told it already checked in.
        return await self.writer.write(caller.user_id, request, pb.CheckInResponse, check_in)

    async def GetStreak(
        self, request: pb.GetStreakRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStreakResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("user_id", request.user_id, required=False)
        problems.raise_if_any()
        target = request.user_id or caller.user_id
        now = datetime.now(UTC)
        async with self.database.read() as session:
            community = await _member_or_moderator(session, request.community_id, caller, target)
            repository = CheckinRepository(session)
            streak = await repository.streak(community.id, target)
            grace = (await repository.settings(community.id)).grace_days
            zone = checkins.day_zone(
                await profile_time_zone(session, community.id, target), community.time_zone
            )
        today = checkins.local_day(now, zone)
        return pb.GetStreakResponse(
            streak=_streak_now(community.id, target, streak, zone, today, grace)
        )

    async def ListCheckins(
        self, request: pb.ListCheckinsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCheckinsResponse:
        caller = current_identity()
        target = request.user_id or caller.user_id
        problems = Violations()
        problems.text("user_id", request.user_id, required=False)
        query = ["checkins", request.community_id, target]
        paging = read_page(problems, request, query)
        problems.raise_if_any()
        before, limit = paging.after, paging.size
        async with self.database.read() as session:
            community = await _member_or_moderator(session, request.community_id, caller, target)
            found = await CheckinRepository(session).listing(
                community.id, target, before=before, limit=limit + 1
            )
        page, token = page_of(found, paging, lambda item: (item.created_at, item.id))
        return pb.ListCheckinsResponse(
            checkins=[checkin_to_proto(c) for c in page], next_page_token=token
        )

    async def SetCheckinSettings(
        self, request: pb.SetCheckinSettingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetCheckinSettingsResponse:
        caller = current_identity()
        problems = Violations()
        if not 0 <= request.grace_days <= checkins.MAX_GRACE_DAYS:
            problems.add("grace_days", f"must be 0 to {checkins.MAX_GRACE_DAYS}")
        problems.raise_if_any()

        async def save(session: AsyncSession) -> pb.SetCheckinSettingsResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.ADMIN, "changing check-in settings"
            )
            require_writable(community, "changing check-in settings")
            await communities.hold(community.id)
            repository = CheckinRepository(session)
            current = await repository.settings(community.id)
            changed = checkins.new_settings(current, request.grace_days, datetime.now(UTC))
            await repository.save_settings(changed)
            return pb.SetCheckinSettingsResponse(settings=settings_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.SetCheckinSettingsResponse, save)

    async def GetCheckinSettings(
        self, request: pb.GetCheckinSettingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCheckinSettingsResponse:
        caller = current_identity()
        async with self.database.read() as session:
            community = await community_for(
                CommunityRepository(session), request.community_id, caller
            )
            settings = await CheckinRepository(session).settings(community.id)
        return pb.GetCheckinSettingsResponse(settings=settings_to_proto(settings))


async def record_checkin(
    session: AsyncSession, community_id: str, caller: Identity, note: str, *, now: datetime
) -> tuple[Checkin, Streak]:
    """The caller's check-in at `now`, stored with its streak and its event."""
    communities = CommunityRepository(session)
    community = await community_for(communities, community_id, caller)
    require_writable(community, "checking in")
    membership = await communities.membership(community.id, caller.user_id)
    if membership is None or not membership.active:
        raise NotFound(f"you are not a member of community {community.id}; join it first")
    if membership.muted(now):
        raise PermissionDenied(
            f"you are muted in community {community.id} until "
            f"{membership.muted_until.isoformat() if membership.muted_until else 'lifted'}"
        )
    repository = CheckinRepository(session)
    zone = checkins.day_zone(
        await profile_time_zone(session, community.id, caller.user_id), community.time_zone
    )
    grace = (await repository.settings(community.id)).grace_days
    previous = await repository.streak(community.id, caller.user_id)
    checkin, streak = checkins.check_in(
        community.id,
        caller.user_id,
        previous,
        note=note,
        zone=zone,
        grace_days=grace,
        now=now,
    )
    await repository.add(checkin, streak)
    await CheckinEvents(session).checked_in(checkin, streak)
    return checkin, streak


async def _member_or_moderator(
    session: AsyncSession, community_id: str, caller: Identity, target: str
) -> domain.Community:
    """The community, once the caller may read `target`'s check-ins: their own as an active
    member, anyone's as a moderator or above."""
    communities = CommunityRepository(session)
    community = await community_for(communities, community_id, caller)
    minimum = domain.Role.MEMBER if target == caller.user_id else domain.Role.MODERATOR
    what = "reading check-ins" if target == caller.user_id else "reading others' check-ins"
    await require_role(communities, community, caller, minimum, what)
    if target != caller.user_id:
        membership = await communities.membership(community.id, target)
        if membership is None:
            raise NotFound(f"{target} has never been a member of community {community.id}")
    return community


def _streak_now(
    community_id: str,
    user_id: str,
    streak: Streak | None,
    zone: str,
    today: date,
    grace: int,
) -> pb.Streak:
    if streak is None:
        return pb.Streak(
            community_id=community_id, user_id=user_id, today=today.isoformat(), time_zone=zone
        )
    return streak_to_proto(
        streak,
        zone,
        checkins.current_days(streak, today, grace),
        today=streak.last_date == today,
        day=today.isoformat(),
    )


def streak_to_proto(
    streak: Streak, zone: str, current: int, *, today: bool, day: str = ""
) -> pb.Streak:
    return pb.Streak(
        community_id=streak.community_id,
        user_id=streak.user_id,
        current_days=current,
        longest_days=streak.longest,
        last_checkin_date=streak.last_date.isoformat(),
        checked_in_today=today,
        today=day or streak.last_date.isoformat(),
        time_zone=zone,
    )


def checkin_to_proto(checkin: Checkin) -> pb.Checkin:
    return pb.Checkin(
        id=checkin.id,
        community_id=checkin.community_id,
        user_id=checkin.user_id,
        local_date=checkin.local_date.isoformat(),
        note=checkin.note,
        checkin_time=timestamp(checkin.created_at),
        time_zone=checkin.time_zone,
    )


def settings_to_proto(settings: Settings) -> pb.CheckinSettings:
    return pb.CheckinSettings(
        community_id=settings.community_id,
        grace_days=settings.grace_days,
        version=settings.version,
        update_time=timestamp(settings.updated_at) if settings.updated_at else None,
    )
