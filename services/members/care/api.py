"""gRPC edge of member care (CareService): a community's care settings and the signals its
members were sent. The signals themselves come from the sweep (`sweep.py`)."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.idempotency import IdempotentWriter
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from services.members.care import domain as care
from services.members.care.domain import Holiday, Settings, Signal
from services.members.care.events import OCCASIONS
from services.members.care.store import CareRepository
from services.members.communities import domain
from services.members.communities.access import community_for, require_role, require_writable
from services.members.communities.store import CommunityRepository
from studyhall.members.v1 import care_events_pb2 as events
from studyhall.members.v1 import care_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["CareService"]
SERVICE_NAME = SERVICE.full_name


KINDS = {
    pb.CARE_SIGNAL_KIND_MEMBER_INACTIVE: care.MEMBER_INACTIVE,
    pb.CARE_SIGNAL_KIND_STREAK_AT_RISK: care.STREAK_AT_RISK,
    pb.CARE_SIGNAL_KIND_GREETING: care.GREETING,
}


KIND_VALUES = {name: value for value, name in KINDS.items()}


class CareApi:
    def __init__(self, database: Database, writer: IdempotentWriter) -> None:
        self.database = database
        self.writer = writer

    async def GetCareSettings(
        self, request: pb.GetCareSettingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCareSettingsResponse:
        caller = current_identity()
        async with self.database.read() as session:
            community = await _moderated(
                session, request.community_id, caller, "reading care settings"
            )
            settings = await CareRepository(session).settings(community.id)
        return pb.GetCareSettingsResponse(settings=settings_to_proto(settings))

    async def SetCareSettings(
        self, request: pb.SetCareSettingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetCareSettingsResponse:
        caller = current_identity()
        proposed = request.settings
        holidays = [Holiday(h.date, h.name) for h in proposed.holidays]
        problems = Violations()
        problems.uuid("settings.community_id", proposed.community_id)
        if request.expected_version < 0:
            problems.add("expected_version", "must be the version you read (0 for the defaults)")
        for field, message in care.settings_problems(
            proposed.inactive_after_days, proposed.streak_reminder_hour, holidays
        ):
            problems.add(f"settings.{field}", message)
        problems.raise_if_any()

        async def save(session: AsyncSession) -> pb.SetCareSettingsResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, proposed.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.ADMIN, "changing care settings"
            )
            require_writable(community, "changing care settings")
            await communities.hold(community.id)
            repository = CareRepository(session)
            current = await repository.settings(community.id)
            wanted = Settings(
                community_id=community.id,
                inactive_after_days=proposed.inactive_after_days,
                streak_reminder_hour=proposed.streak_reminder_hour,
                birthdays=proposed.birthdays,
                holidays=tuple(holidays),
            )
            changed = care.new_settings(
                current, wanted, request.expected_version, datetime.now(UTC)
            )
            await repository.save_settings(changed)
            return pb.SetCareSettingsResponse(settings=settings_to_proto(changed))

        return await self.writer.write(caller.user_id, request, pb.SetCareSettingsResponse, save)

    async def ListCareSignals(
        self, request: pb.ListCareSignalsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCareSignalsResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("kind", request.kind, KINDS, "CareSignalKind")
        query = ["care_signals", request.community_id, str(int(request.kind))]
        paging = read_page(problems, request, query)
        problems.raise_if_any()
        before, limit = paging.after, paging.size
        async with self.database.read() as session:
            community = await _moderated(
                session, request.community_id, caller, "reading care signals"
            )
            found = await CareRepository(session).listing(
                community.id, kind=KINDS.get(request.kind, ""), before=before, limit=limit + 1
            )
        page, token = page_of(found, paging, lambda item: (item.created_at, item.event_id))
        return pb.ListCareSignalsResponse(
            signals=[signal_to_proto(s) for s in page], next_page_token=token
        )


async def _moderated(
    session: AsyncSession, community_id: str, caller: Identity, what: str
) -> domain.Community:
    communities = CommunityRepository(session)
    community = await community_for(communities, community_id, caller)
    await require_role(communities, community, caller, domain.Role.MODERATOR, what)
    return community


def settings_to_proto(settings: Settings) -> pb.CareSettings:
    return pb.CareSettings(
        community_id=settings.community_id,
        inactive_after_days=settings.inactive_after_days,
        streak_reminder_hour=settings.streak_reminder_hour,
        birthdays=settings.birthdays,
        holidays=[pb.Holiday(date=h.when, name=h.name) for h in settings.holidays],
        version=settings.version,
        update_time=timestamp(settings.updated_at) if settings.updated_at else None,
    )


def signal_to_proto(signal: Signal) -> pb.CareSignal:
    return pb.CareSignal(
        community_id=signal.community_id,
        user_id=signal.user_id,
        kind=KIND_VALUES[signal.kind],
        local_date=signal.local_date.isoformat(),
        days=signal.days,
        occasion=OCCASIONS.get(signal.occasion, events.GREETING_OCCASION_UNSPECIFIED),
        holiday_name=signal.holiday_name,
        event_id=signal.event_id,
        create_time=timestamp(signal.created_at),
    )
