"""gRPC edge of recognition: manual awards and kudos, ledgers, standings, levels, badges and
leaderboards. Points from the backbone arrive through `recognition_consumers`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import AlreadyExists, FailedPrecondition, NotFound
from services.kit.idempotency import IdempotencyKey, IdempotentWriter
from services.kit.validation import Violations
from services.members import domain, levels, page_tokens, points
from services.members.awards import Landed, land
from services.members.leaderboards import BoardEntry, Leaderboards, Window
from services.members.standing import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    apply,
    community_for,
    require_role,
    timestamp,
)
from services.members.store import recognition_events
from services.members.store.ledger_repository import Entry, LedgerRepository
from services.members.store.repository import CommunityRepository, log_moderation
from services.members.store.tables import idempotency_keys
from studyhall.members.v1 import recognition_service_pb2 as pb
from studyhall.members.v1 import recognition_service_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RecognitionService"].full_name
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RecognitionApi(pb_grpc.RecognitionServiceServicer):
    def __init__(
        self,
        database: Database,
        boards: Leaderboards,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.database = database
        self.boards = boards
        self.idempotent = IdempotentWriter(database, idempotency_keys)
        self.on_commit = on_commit

    async def AwardPoints(
        self, request: pb.AwardPointsRequest, context: grpc.aio.ServicerContext
    ) -> pb.AwardPointsResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.text("user_id", request.user_id, max_length=200)
        if request.amount == 0 or abs(request.amount) > points.MAX_MANUAL:
            problems.add(
                "amount",
                f"must be nonzero and between -{points.MAX_MANUAL} and {points.MAX_MANUAL}",
            )
        problems.text("reason", request.reason, required=False, max_length=500)
        problems.raise_if_any()
        landed: list[Landed] = []

        async def award(session: AsyncSession) -> pb.AwardPointsResponse:
            landed.clear()
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            if community.archived_at is not None:
                raise FailedPrecondition(f"community {community.id} is archived")
            await require_role(
                communities, community, caller, domain.Role.MEMBER, "awarding points"
            )
            giver = await communities.membership(community.id, caller.user_id)
            moderator = caller.operator or (
                giver is not None and giver.role >= domain.Role.MODERATOR
            )
            if moderator and not request.reason.strip():
                problems.add("reason", "is required: say why the points are awarded")
                problems.raise_if_any()
            recipient = await communities.membership(community.id, request.user_id)
            if recipient is None or not recipient.active:
                raise NotFound(f"{request.user_id} is not a member of community {community.id}")
            ledger = LedgerRepository(session)
            zone = await ledger.zone(community.id)
            kudos_allowed = await ledger.holds(community.id, caller.user_id, "give_kudos")
            now = datetime.now(UTC)
            chosen = apply(
                lambda: points.manual_award(
                    community_id=community.id,
                    giver=caller.user_id,
                    recipient=request.user_id,
                    amount=request.amount,
                    note=request.reason.strip(),
                    moderator=moderator,
                    muted=giver is not None and giver.muted(now),
                    may_give_kudos=kudos_allowed,
                    local_day=now.astimezone(zone).date(),
                    now=now,
                    request_id=str(uuid.uuid4()),
                )
            )
            result = await land(session, chosen)
            if result is None:
                raise AlreadyExists(
                    f"you already gave {request.user_id} kudos today; try again tomorrow"
                )
            landed.append(result)
            return pb.AwardPointsResponse(
                entry=_entry_to_proto(result.entry),
                standing=await _standing(ledger, community.id, request.user_id),
            )

        key = IdempotencyKey(caller.user_id, "AwardPoints", request.request_id)
        response = await self.idempotent.run(key, request, pb.AwardPointsResponse, award)
        self.on_commit()
        await self._post(landed)
        return response

    async def _post(self, landed: list[Landed]) -> None:
        if not landed:
            return
        async with self.database.read() as session:
            ledger = LedgerRepository(session)
            zones = {
                item.entry.award.community_id: await ledger.zone(item.entry.award.community_id)
                for item in landed
            }
        await self.boards.record(
            [
                BoardEntry(
                    item.entry.award.community_id,
                    item.entry.id,
                    item.entry.award.user_id,
                    item.entry.award.amount,
                    item.entry.local_date,
                )
                for item in landed
            ],
            zones,
        )

    async def ListLedger(
        self, request: pb.ListLedgerRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListLedgerResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        problems.text("user_id", request.user_id, required=False, max_length=200)
        _check_page_size(problems, request.page_size)
        target = request.user_id or caller.user_id
        query = ("ledger", request.community_id, target)
        before: int | None = None
        if request.page_token:
            position = page_tokens.decode(request.page_token, query)
            if position is None or not position[1].isdigit():
                problems.add("page_token", "is not a token this query returned; start without it")
            else:
                before = int(position[1])
        problems.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        async with self.database.read() as session:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            if target != caller.user_id:
                await require_role(
                    communities,
                    community,
                    caller,
                    domain.Role.MODERATOR,
                    "reading another member's ledger",
                )
            found = await LedgerRepository(session).entries(
                community.id, target, before=before, limit=size + 1
            )
        page, more = found[:size], len(found) > size
        return pb.ListLedgerResponse(
            entries=[_entry_to_proto(entry) for entry in page],
            next_page_token=page_tokens.encode((_EPOCH, str(page[-1].id)), query) if more else "",
        )

    async def GetStanding(
        self, request: pb.GetStandingRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStandingResponse:
        caller = current_identity()
        community_id, target = await self._member_query(request.community_id, request.user_id)
        async with self.database.read() as session:
            ledger = await self._readable_member(session, community_id, target, caller)
            return pb.GetStandingResponse(standing=await _standing(ledger, community_id, target))

    async def ListBadges(
        self, request: pb.ListBadgesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBadgesResponse:
        caller = current_identity()
        community_id, target = await self._member_query(request.community_id, request.user_id)
        async with self.database.read() as session:
            ledger = await self._readable_member(session, community_id, target, caller)
            held = await ledger.badges(community_id, target)
        return pb.ListBadgesResponse(
            badges=[pb.Badge(code=code, award_time=timestamp(at)) for code, at in held]
        )

    async def SetLevels(
        self, request: pb.SetLevelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetLevelsResponse:
        caller = current_identity()
        problems = Violations()
        problems.request_id(request.request_id)
        problems.uuid("community_id", request.community_id)
        problems.raise_if_any()
        ladder = apply(
            lambda: levels.ladder_of(
                [(level.min_points, list(level.privileges)) for level in request.levels]
            )
        )

        async def set_levels(session: AsyncSession) -> pb.SetLevelsResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.ADMIN, "changing the levels"
            )
            ledger = LedgerRepository(session)
            await ledger.save_ladder(community.id, ladder)
            # Members whose level the new thresholds move hear of it like any other change.
            for user_id, activity in (await ledger.activities(community.id)).items():
                level = ladder.level_for(activity.points_total)
                if level != activity.level:
                    await ledger.set_level(community.id, user_id, level)
                    await recognition_events.level_changed(
                        session,
                        community_id=community.id,
                        user_id=user_id,
                        old_level=activity.level,
                        new_level=level,
                        privileges=ladder.privileges_at(level),
                        points_total=activity.points_total,
                        entry_id=0,
                    )
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="set_levels",
                target="",
                reason=f"{len(ladder.levels)} levels",
            )
            return pb.SetLevelsResponse(levels=_levels_to_proto(ladder))

        key = IdempotencyKey(caller.user_id, "SetLevels", request.request_id)
        response = await self.idempotent.run(key, request, pb.SetLevelsResponse, set_levels)
        self.on_commit()
        return response

    async def GetLevels(
        self, request: pb.GetLevelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLevelsResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        problems.raise_if_any()
        async with self.database.read() as session:
            community = await community_for(
                CommunityRepository(session), request.community_id, caller
            )
            ladder = await LedgerRepository(session).ladder(community.id)
        return pb.GetLevelsResponse(
            levels=_levels_to_proto(ladder), privilege_catalogue=list(levels.PRIVILEGES)
        )

    async def GetLeaderboard(
        self, request: pb.GetLeaderboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLeaderboardResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("community_id", request.community_id)
        problems.enum("window", request.window, Window, "LeaderboardWindow", required=True)
        _check_page_size(problems, request.page_size)
        query = ("leaderboard", request.community_id, str(request.window))
        offset = 0
        if request.page_token:
            position = page_tokens.decode(request.page_token, query)
            if position is None or not position[1].isdigit():
                problems.add("page_token", "is not a token this query returned; start without it")
            else:
                offset = int(position[1])
        problems.raise_if_any()
        size = request.page_size or DEFAULT_PAGE_SIZE
        async with self.database.read() as session:
            community = await community_for(
                CommunityRepository(session), request.community_id, caller
            )
            zone = await LedgerRepository(session).zone(community.id)
        found = await self.boards.top(
            community.id, Window(request.window), zone, offset=offset, limit=size + 1
        )
        page, more = found[:size], len(found) > size
        return pb.GetLeaderboardResponse(
            entries=[
                pb.LeaderboardEntry(rank=offset + index + 1, user_id=user_id, points=total)
                for index, (user_id, total) in enumerate(page)
            ],
            next_page_token=page_tokens.encode((_EPOCH, str(offset + size)), query) if more else "",
        )

    async def _member_query(self, community_id: str, user_id: str) -> tuple[str, str]:
        problems = Violations()
        problems.uuid("community_id", community_id)
        problems.text("user_id", user_id, required=False, max_length=200)
        problems.raise_if_any()
        return community_id, user_id or current_identity().user_id

    async def _readable_member(
        self, session: AsyncSession, community_id: str, user_id: str, caller: Identity
    ) -> LedgerRepository:
        community = await community_for(CommunityRepository(session), community_id, caller)
        ledger = LedgerRepository(session)
        if not await ledger.known(community.id, user_id):
            raise NotFound(f"{user_id} is not a member of community {community.id}")
        return ledger


async def _standing(ledger: LedgerRepository, community_id: str, user_id: str) -> pb.Standing:
    activity = await ledger.activity(community_id, user_id)
    ladder = await ledger.ladder(community_id)
    total = activity.points_total if activity else 0
    level = ladder.level_for(total)
    return pb.Standing(
        community_id=community_id,
        user_id=user_id,
        points_total=total,
        level=level,
        next_level_points=ladder.next_threshold(total),
        privileges=ladder.privileges_at(level),
        badges=[
            pb.Badge(code=code, award_time=timestamp(at))
            for code, at in await ledger.badges(community_id, user_id)
        ],
    )


def _entry_to_proto(entry: Entry) -> pb.LedgerEntry:
    award = entry.award
    return pb.LedgerEntry(
        id=entry.id,
        community_id=award.community_id,
        user_id=award.user_id,
        amount=award.amount,
        reason=award.reason,
        source_event_id=award.source_event_id,
        awarded_by_user_id=award.awarded_by,
        create_time=timestamp(award.created_at),
        local_date=entry.local_date.isoformat(),
        note=award.note,
    )


def _levels_to_proto(ladder: levels.Ladder) -> list[pb.Level]:
    return [
        pb.Level(level=level.number, min_points=level.min_points, privileges=level.privileges)
        for level in ladder.levels
    ]


def _check_page_size(problems: Violations, page_size: int) -> None:
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        problems.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
