"""gRPC edge of member care (CareService): a community's care settings and the signals its
members were sent. The signals themselves come from the sweep (care_sweep)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition
from services.kit.idempotency import IdempotencyKey, IdempotentWriter
from services.kit.validation import Violations
from services.members import care, domain, page_tokens
from services.members.care import Holiday, Settings, Signal
from services.members.convert import ApiBase
from services.members.data_rights import eraser, exporter
from services.members.standing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    apply,
    community_for,
    require_role,
    timestamp,
)
from services.members.store.care_repository import CareRepository
from services.members.store.repository import CommunityRepository
from services.members.store.tables import idempotency_keys
from studyhall.members.v1 import care_events_pb2 as events
from studyhall.members.v1 import care_service_pb2 as pb
from studyhall.members.v1 import care_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CareService"].full_name

KINDS = {
    pb.CARE_SIGNAL_KIND_MEMBER_INACTIVE: care.MEMBER_INACTIVE,
    pb.CARE_SIGNAL_KIND_STREAK_AT_RISK: care.STREAK_AT_RISK,
    pb.CARE_SIGNAL_KIND_GREETING: care.GREETING,
}
KIND_VALUES = {name: value for value, name in KINDS.items()}
OCCASIONS = {
    care.BIRTHDAY: events.GREETING_OCCASION_BIRTHDAY,
    care.HOLIDAY: events.GREETING_OCCASION_HOLIDAY,
}


class CareApi(ApiBase, pb_grpc.CareServiceServicer):
    def __init__(self, database: Database, on_commit: Callable[[], None] = lambda: None) -> None:
        self.database = database
        self.idempotent = IdempotentWriter(database, idempotency_keys)
        self.on_commit = on_commit

    async def GetCareSettings(
        self, request: pb.GetCareSettingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCareSettingsResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        problems.raise_if_any()
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
        problems.request_id(request.request_id)
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
            if community.archived_at is not None:
                raise FailedPrecondition(f"community {community.id} is archived")
            repository = CareRepository(session)
            current = await repository.settings(community.id)
            wanted = Settings(
                community_id=community.id,
                inactive_after_days=proposed.inactive_after_days,
                streak_reminder_hour=proposed.streak_reminder_hour,
                birthdays=proposed.birthdays,
                holidays=tuple(holidays),
            )
            changed = apply(
                lambda: care.new_settings(
                    current, wanted, request.expected_version, datetime.now(UTC)
                )
            )
            await repository.save_settings(changed)
            return pb.SetCareSettingsResponse(settings=settings_to_proto(changed))

        key = IdempotencyKey(caller.user_id, "SetCareSettings", request.request_id)
        return await self.idempotent.run(key, request, pb.SetCareSettingsResponse, save)

    async def ListCareSignals(
        self, request: pb.ListCareSignalsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCareSignalsResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        problems.enum("kind", request.kind, KINDS, "CareSignalKind")
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            problems.add("page_size", f"must be 0 (the default) to {MAX_PAGE_SIZE}")
        query = ["care_signals", request.community_id, str(int(request.kind))]
        before = None
        if request.page_token:
            before = page_tokens.decode(request.page_token, query)
            if before is None:
                problems.add("page_token", "is not from this listing; start again without it")
        problems.raise_if_any()
        limit = request.page_size or DEFAULT_PAGE_SIZE
        async with self.database.read() as session:
            community = await _moderated(
                session, request.community_id, caller, "reading care signals"
            )
            found = await CareRepository(session).listing(
                community.id, kind=KINDS.get(request.kind, ""), before=before, limit=limit + 1
            )
        page = found[:limit]
        token = ""
        if len(found) > limit:
            token = page_tokens.encode((page[-1].created_at, page[-1].event_id), query)
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


# --- Data rights: the signals sent to a member are theirs to see and to have erased ---


@exporter("care_signals")
async def export_care_signals(
    session: AsyncSession, community_id: str, user_id: str
) -> list[dict[str, Any]]:
    found = await CareRepository(session).listing(community_id, user_id=user_id)
    return [
        {
            "kind": signal.kind,
            "local_date": signal.local_date.isoformat(),
            "days": signal.days,
            "occasion": signal.occasion,
            "holiday_name": signal.holiday_name,
            "event_id": signal.event_id,
            "create_time": signal.created_at,
        }
        for signal in found
    ]


@eraser("care_signals")
async def erase_care_signals(session: AsyncSession, community_id: str, user_id: str) -> None:
    await CareRepository(session).erase(community_id, user_id)
