"""Daily check-ins through gRPC: once per local day, streaks that survive the community's
grace days, who may read whose, and the CheckedIn fact (without the note)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import select

from services.kit.auth import Identity
from services.members.checkins.api import record_checkin
from services.members.checkins.domain import local_day
from services.members.store.tables import checkins, outbox
from studyhall.members.v1 import checkins_events_pb2 as events
from studyhall.members.v1 import checkins_service_pb2 as pb
from studyhall.members.v1 import checkins_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import members_service_pb2 as mpb
from studyhall.members.v1 import members_service_pb2_grpc as mpb_grpc
from studyhall.members.v1 import profiles_service_pb2 as ppb
from studyhall.members.v1 import profiles_service_pb2_grpc as ppb_grpc
from tests.support.errors import field_violations
from tests.support.services import RunningService

pytestmark = pytest.mark.service

SHANGHAI = "Asia/Shanghai"


class Club:
    """One community owned by "olga" with the moderator "mia", and helpers to act in it."""

    def __init__(self, members: RunningService, community_id: str) -> None:
        self.members = members
        self.id = community_id
        self.community = mpb_grpc.MembersServiceStub(members.channel)
        self.checkins = pb_grpc.CheckinsServiceStub(members.channel)

    @classmethod
    async def create(
        cls, members: RunningService, time_zone: str = "", moderator: str = "mia"
    ) -> Club:
        reply = await mpb_grpc.MembersServiceStub(members.channel).CreateCommunity(
            mpb.CreateCommunityRequest(name=f"Club {uuid.uuid4().hex[:8]}", topic="reading"),
            metadata=members.auth("olga"),
        )
        club = cls(members, reply.community.id)
        if time_zone:
            await club.community.UpdateCommunity(
                mpb.UpdateCommunityRequest(
                    community=mpb.Community(id=club.id, time_zone=time_zone),
                    update_mask=FieldMask(paths=["time_zone"]),
                ),
                metadata=members.auth("olga"),
            )
        await club.join(moderator)
        await club.community.ChangeRole(
            mpb.ChangeRoleRequest(community_id=club.id, user_id=moderator, role=mpb.ROLE_MODERATOR),
            metadata=members.auth("olga"),
        )
        return club

    async def join(self, *users: str) -> None:
        for user in users:
            await self.community.JoinCommunity(
                mpb.JoinCommunityRequest(community_id=self.id), metadata=self.members.auth(user)
            )

    async def check_in(self, user: str, note: str = "", request_id: str = "") -> pb.CheckInResponse:
        reply: pb.CheckInResponse = await self.checkins.CheckIn(
            pb.CheckInRequest(community_id=self.id, note=note, request_id=request_id),
            metadata=self.members.auth(user),
        )
        return reply

    async def streak(self, user: str, of: str = "") -> pb.Streak:
        reply = await self.checkins.GetStreak(
            pb.GetStreakRequest(community_id=self.id, user_id=of), metadata=self.members.auth(user)
        )
        streak: pb.Streak = reply.streak
        return streak

    async def listing(self, user: str, of: str = "") -> list[pb.Checkin]:
        reply = await self.checkins.ListCheckins(
            pb.ListCheckinsRequest(community_id=self.id, user_id=of),
            metadata=self.members.auth(user),
        )
        return list(reply.checkins)

    async def stored(self, user: str) -> int:
        async with self.members.deps.database.read() as session:
            rows = await session.execute(
                select(checkins.c.id).where(
                    checkins.c.community_id == self.id, checkins.c.user_id == user
                )
            )
            return len(rows.all())


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_a_member_checks_in_once_a_day_and_the_fact_carries_no_note(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    await club.join("ana")
    reply = await club.check_in("ana", note="read chapter 3", request_id="day-1")
    today = datetime.now(UTC).date().isoformat()
    assert (reply.checkin.local_date, reply.checkin.time_zone) == (today, "UTC")
    assert reply.checkin.note == "read chapter 3"
    assert (reply.streak.current_days, reply.streak.checked_in_today) == (1, True)
    # A retry of the same request is the same check-in, not a second one.
    retried = await club.check_in("ana", note="read chapter 3", request_id="day-1")
    assert retried.checkin.id == reply.checkin.id

    again = await refused(club.check_in("ana", note="more"))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    assert today in (again.details() or "")
    assert await club.stored("ana") == 1

    streak = await club.streak("ana")
    assert (streak.current_days, streak.longest_days, streak.last_checkin_date) == (1, 1, today)
    assert (streak.checked_in_today, streak.today, streak.time_zone) == (True, today, "UTC")
    listed = await club.listing("ana")
    assert [c.id for c in listed] == [reply.checkin.id]

    async with members.deps.database.read() as session:
        rows = (
            await session.execute(
                select(outbox.c.payload, outbox.c.ce_subject).where(
                    outbox.c.community_id == club.id,
                    outbox.c.event_type == "studyhall.members.v1.CheckedIn",
                )
            )
        ).all()
    assert len(rows) == 1
    fact = events.CheckedIn.FromString(rows[0].payload)
    assert (fact.user_id, fact.checkin_id, fact.local_date, fact.streak_days) == (
        "ana",
        reply.checkin.id,
        today,
        1,
    )
    assert b"chapter" not in rows[0].payload


async def test_who_may_not_check_in_and_bad_notes_write_nothing(members: RunningService) -> None:
    club = await Club.create(members)
    await club.join("ana", "ben")
    await club.community.ModerateMember(
        mpb.ModerateMemberRequest(
            community_id=club.id,
            user_id="ben",
            action=mpb.MODERATION_ACTION_MUTE,
            reason="spam",
        ),
        metadata=members.auth("mia"),
    )
    muted = await refused(club.check_in("ben"))
    assert muted.code() == grpc.StatusCode.PERMISSION_DENIED
    stranger = await refused(club.check_in("zed"))
    assert stranger.code() == grpc.StatusCode.NOT_FOUND
    long_note = await refused(club.check_in("ana", note="x" * 501))
    assert "note" in field_violations(long_note)
    for user in ("ben", "zed", "ana"):
        assert await club.stored(user) == 0
    assert (await club.streak("ana")).current_days == 0


async def test_streaks_count_local_days_in_the_members_time_zone(
    members: RunningService,
) -> None:
    club = await Club.create(members, time_zone="America/New_York")
    await club.join("ana", "ben")
    profiles = ppb_grpc.ProfilesServiceStub(members.channel)
    await profiles.UpdateProfile(
        ppb.UpdateProfileRequest(
            profile=ppb.Profile(community_id=club.id, time_zone=SHANGHAI),
            update_mask=FieldMask(paths=["time_zone"]),
        ),
        metadata=members.auth("ana"),
    )
    # The clock is the domain's to inject: two earlier days, then today through gRPC.
    now = datetime.now(UTC)
    async with members.deps.database.write() as session:
        for days_ago in (2, 1):
            await record_checkin(
                session, club.id, Identity("ana"), "", now=now - timedelta(days=days_ago)
            )
    before = await club.streak("ana")
    assert (before.current_days, before.checked_in_today) == (2, False)
    assert before.time_zone == SHANGHAI
    assert before.today == local_day(now, SHANGHAI).isoformat()
    reply = await club.check_in("ana")
    assert reply.checkin.local_date == local_day(now, SHANGHAI).isoformat()
    assert (reply.streak.current_days, reply.streak.longest_days) == (3, 3)
    listed = await club.listing("ana")
    assert [c.local_date for c in listed] == [
        local_day(now - timedelta(days=d), SHANGHAI).isoformat() for d in (0, 1, 2)
    ]

    # ben has no zone of his own: the community's counts. A gap of two days breaks his
    # streak unless the community grants two grace days.
    async with members.deps.database.write() as session:
        await record_checkin(session, club.id, Identity("ben"), "", now=now - timedelta(days=3))
    assert (await club.streak("ben")).current_days == 0
    await club.checkins.SetCheckinSettings(
        pb.SetCheckinSettingsRequest(community_id=club.id, grace_days=2),
        metadata=members.auth("olga"),
    )
    assert (await club.streak("ben")).current_days == 1
    bens = await club.check_in("ben")
    assert bens.checkin.time_zone == "America/New_York"
    assert bens.streak.current_days == 2


async def test_grace_is_set_by_admins_and_read_by_anyone_who_sees_the_community(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    await club.join("ana")
    for user in ("ana", "mia"):
        denied = await refused(
            club.checkins.SetCheckinSettings(
                pb.SetCheckinSettingsRequest(community_id=club.id, grace_days=1),
                metadata=members.auth(user),
            )
        )
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    too_kind = await refused(
        club.checkins.SetCheckinSettings(
            pb.SetCheckinSettingsRequest(community_id=club.id, grace_days=4),
            metadata=members.auth("olga"),
        )
    )
    assert "grace_days" in field_violations(too_kind)
    settings = await club.checkins.GetCheckinSettings(
        pb.GetCheckinSettingsRequest(community_id=club.id), metadata=members.auth("zed")
    )
    assert (settings.settings.grace_days, settings.settings.version) == (0, 0)
    saved = await club.checkins.SetCheckinSettings(
        pb.SetCheckinSettingsRequest(community_id=club.id, grace_days=3),
        metadata=members.auth("olga"),
    )
    assert (saved.settings.grace_days, saved.settings.version) == (3, 1)
    read = await club.checkins.GetCheckinSettings(
        pb.GetCheckinSettingsRequest(community_id=club.id), metadata=members.auth("ana")
    )
    assert read.settings.grace_days == 3


async def test_moderators_read_a_members_check_ins_members_only_their_own(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    await club.join("ana", "ben")
    await club.check_in("ana", note="flashcards")
    seen = await club.listing("mia", of="ana")
    assert [c.note for c in seen] == ["flashcards"]
    assert (await club.streak("mia", of="ana")).current_days == 1
    for call in (club.listing("ben", of="ana"), club.streak("ben", of="ana")):
        assert (await refused(call)).code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await refused(club.streak("mia", of="nobody"))).code() == grpc.StatusCode.NOT_FOUND
    assert (await refused(club.listing("zed"))).code() == grpc.StatusCode.PERMISSION_DENIED


async def test_check_ins_and_streaks_never_cross_communities(members: RunningService) -> None:
    books = await Club.create(members)
    words = await Club.create(members, moderator="max")
    for club in (books, words):
        await club.join("ana")
    await books.check_in("ana", note="novel")
    # The same day in another community is another check-in.
    await words.check_in("ana")
    await words.checkins.SetCheckinSettings(
        pb.SetCheckinSettingsRequest(community_id=words.id, grace_days=2),
        metadata=members.auth("olga"),
    )
    assert [c.note for c in await books.listing("ana")] == ["novel"]
    assert [c.note for c in await words.listing("ana")] == [""]
    assert (await books.streak("ana")).current_days == 1
    books_settings = await books.checkins.GetCheckinSettings(
        pb.GetCheckinSettingsRequest(community_id=books.id), metadata=members.auth("ana")
    )
    assert books_settings.settings.grace_days == 0
    # A moderator of one community is nobody in the other.
    denied = await refused(words.listing("mia", of="ana"))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_erasure_removes_check_in_notes_but_keeps_the_days(members: RunningService) -> None:
    club = await Club.create(members)
    await club.join("ana")
    await club.check_in("ana", note="my diary")
    exported = await club.community.ExportMyData(
        mpb.ExportMyDataRequest(community_id=club.id), metadata=members.auth("ana")
    )
    assert b"my diary" in exported.document
    await club.community.EraseMyData(
        mpb.EraseMyDataRequest(community_id=club.id, confirm=True), metadata=members.auth("ana")
    )
    async with members.deps.database.read() as session:
        notes = (
            await session.execute(
                select(checkins.c.note, checkins.c.local_date).where(
                    checkins.c.community_id == club.id
                )
            )
        ).all()
    assert [note for note, _ in notes] == [""]
