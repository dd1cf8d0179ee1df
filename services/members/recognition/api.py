"""gRPC edge of recognition: manual awards and kudos, ledgers, standings, levels, badges and
leaderboards. Points from the backbone arrive through `consumers`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import AlreadyExists, NotFound
from services.kit.idempotency import IdempotentWriter
from services.kit.paging import page_of, read_page
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from services.members.communities import domain
from services.members.communities.access import community_for, require_role, require_writable
from services.members.communities.store import CommunityRepository, log_moderation
from services.members.recognition import events as recognition_events
from services.members.recognition import levels, points
from services.members.recognition.awards import Landed, land
from services.members.recognition.events import RecognitionEvents
from services.members.recognition.leaderboards import BoardEntry, Leaderboards, Window
from services.members.recognition.store import Entry, LedgerRepository
from studyhall.members.v1 import recognition_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["RecognitionService"]
SERVICE_NAME = SERVICE.full_name
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RecognitionApi:
    def __init__(self, database: Database, writer: IdempotentWriter, boards: Leaderboards) -> None:
        self.database = database
        self.writer = writer
        self.boards = boards

    async def AwardPoints(
        self, request: pb.AwardPointsRequest, context: grpc.aio.ServicerContext
    ) -> pb.AwardPointsResponse:
        caller = current_identity()
        problems = Violations()
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
            require_writable(community, "awarding points")
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
            chosen = points.manual_award(
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

        response = await self.writer.write(caller.user_id, request, pb.AwardPointsResponse, award)
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
        problems.text("user_id", request.user_id, required=False, max_length=200)
        target = request.user_id or caller.user_id
        query = ("ledger", request.community_id, target)
        paging = read_page(problems, request, query, numeric=True)
        problems.raise_if_any()
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
                community.id, target, before=paging.after_number, limit=paging.size + 1
            )
        page, token = page_of(found, paging, lambda entry: (_EPOCH, str(entry.id)))
        return pb.ListLedgerResponse(
            entries=[_entry_to_proto(entry) for entry in page], next_page_token=token
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
        ladder = levels.ladder_of(
            [(level.min_points, list(level.privileges)) for level in request.levels]
        )

        async def set_levels(session: AsyncSession) -> pb.SetLevelsResponse:
            communities = CommunityRepository(session)
            community = await community_for(communities, request.community_id, caller)
            await require_role(
                communities, community, caller, domain.Role.ADMIN, "changing the levels"
            )
            require_writable(community, "changing the levels")
            # Two ladders set at once queue: each replaces every level and numbers a version.
            await communities.hold(community.id)
            ledger = LedgerRepository(session)
            version = await ledger.save_ladder(community.id, ladder)
            await RecognitionEvents(session).levels_changed(community.id, ladder, version)
            # Members whose level the new thresholds move hear of it like any other change.
            moved: dict[tuple[str, str], int] = {}
            changes = []
            for user_id, activity in (await ledger.activities(community.id)).items():
                level = ladder.level_for(activity.points_total)
                if level != activity.level:
                    moved[(community.id, user_id)] = level
                    changes.append(
                        recognition_events.level_changed(
                            community_id=community.id,
                            user_id=user_id,
                            old_level=activity.level,
                            new_level=level,
                            privileges=ladder.privileges_at(level),
                            points_total=activity.points_total,
                            entry_id=0,
                            levels_version=version,
                        )
                    )
            await ledger.set_levels(moved)
            await RecognitionEvents(session).stage(changes)
            await log_moderation(
                session,
                community_id=community.id,
                actor=caller.user_id,
                action="set_levels",
                target="",
                reason=f"{len(ladder.levels)} levels",
            )
            return pb.SetLevelsResponse(levels=_levels_to_proto(ladder))

        return await self.writer.write(caller.user_id, request, pb.SetLevelsResponse, set_levels)

    async def GetLevels(
        self, request: pb.GetLevelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLevelsResponse:
        caller = current_identity()
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
        problems.enum("window", request.window, Window, "LeaderboardWindow", required=True)
        query = ("leaderboard", request.community_id, str(request.window))
        paging = read_page(problems, request, query, numeric=True)
        problems.raise_if_any()
        offset, size = paging.after_number or 0, paging.size
        async with self.database.read() as session:
            community = await community_for(
                CommunityRepository(session), request.community_id, caller
            )
            zone = await LedgerRepository(session).zone(community.id)
        found = await self.boards.top(
            community.id, Window(request.window), zone, offset=offset, limit=size + 1
        )
        page, token = page_of(found, paging, lambda _: (_EPOCH, str(offset + size)))
        return pb.GetLeaderboardResponse(
            entries=[
                pb.LeaderboardEntry(rank=offset + index + 1, user_id=user_id, points=total)
                for index, (user_id, total) in enumerate(page)
            ],
            next_page_token=token,
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
