"""Member care through gRPC and the sweep: settings and who may change them, signals sent once
per member, kind and local day however many sweeps run, in each member's time zone, never to
muted or departed members, never mixed between communities, and listed for moderators."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from services.kit.auth import Identity
from services.kit.database import Database
from services.kit.projection import upsert
from services.members.app import SPEC
from services.members.care import domain as care
from services.members.care.sweep import sweep_once
from services.members.checkins.api import record_checkin
from services.members.settings import MembersSettings
from services.members.store.tables import care_settings, care_signals, member_activity, outbox
from studyhall.members.v1 import care_events_pb2 as events
from studyhall.members.v1 import care_service_pb2 as pb
from studyhall.members.v1 import care_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import members_service_pb2 as mpb
from studyhall.members.v1 import members_service_pb2_grpc as mpb_grpc
from studyhall.members.v1 import profiles_service_pb2 as ppb
from studyhall.members.v1 import profiles_service_pb2_grpc as ppb_grpc
from tests.support.errors import field_violations
from tests.support.members import joins_marked_as_activity
from tests.support.processes import replicas
from tests.support.services import RunningService, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

TOKYO = "Asia/Tokyo"
EVENT_TYPES = {
    care.MEMBER_INACTIVE: "studyhall.members.v1.MemberInactive",
    care.STREAK_AT_RISK: "studyhall.members.v1.StreakAtRisk",
    care.GREETING: "studyhall.members.v1.Greeting",
}


@pytest.fixture
async def members(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    """The members service without its own sweep loop: the tests sweep at chosen moments."""
    async with running_service(
        SPEC,
        MembersSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
        care_sweep_seconds=0,
    ) as running:
        yield running


class Club:
    """A community owned by "olga" with the moderator "mia"."""

    def __init__(self, members: RunningService, community_id: str) -> None:
        self.members = members
        self.id = community_id
        self.community = mpb_grpc.MembersServiceStub(members.channel)
        self.care = pb_grpc.CareServiceStub(members.channel)
        self.profiles = ppb_grpc.ProfilesServiceStub(members.channel)

    @classmethod
    async def create(cls, members: RunningService) -> Club:
        reply = await mpb_grpc.MembersServiceStub(members.channel).CreateCommunity(
            mpb.CreateCommunityRequest(name=f"Club {uuid.uuid4().hex[:8]}", topic="reading"),
            metadata=members.auth("olga"),
        )
        club = cls(members, reply.community.id)
        await club.join("mia")
        await club.community.ChangeRole(
            mpb.ChangeRoleRequest(community_id=club.id, user_id="mia", role=mpb.ROLE_MODERATOR),
            metadata=members.auth("olga"),
        )
        return club

    async def join(self, *users: str) -> None:
        for user in users:
            await self.community.JoinCommunity(
                mpb.JoinCommunityRequest(community_id=self.id), metadata=self.members.auth(user)
            )

    async def mute(self, user: str) -> None:
        until = Timestamp()
        until.FromDatetime(datetime.now(UTC) + timedelta(days=400))
        await self.community.ModerateMember(
            mpb.ModerateMemberRequest(
                community_id=self.id,
                user_id=user,
                action=mpb.MODERATION_ACTION_MUTE,
                reason="spam",
                until=until,
            ),
            metadata=self.members.auth("mia"),
        )

    async def leave(self, user: str) -> None:
        await self.community.LeaveCommunity(
            mpb.LeaveCommunityRequest(community_id=self.id), metadata=self.members.auth(user)
        )

    async def profile(self, user: str, paths: list[str], **fields: Any) -> None:
        await self.profiles.UpdateProfile(
            ppb.UpdateProfileRequest(
                profile=ppb.Profile(community_id=self.id, **fields),
                update_mask=FieldMask(paths=paths),
            ),
            metadata=self.members.auth(user),
        )

    async def settings(self, user: str = "mia") -> pb.CareSettings:
        reply = await self.care.GetCareSettings(
            pb.GetCareSettingsRequest(community_id=self.id), metadata=self.members.auth(user)
        )
        settings: pb.CareSettings = reply.settings
        return settings

    async def set_settings(
        self, user: str = "olga", *, version: int | None = None, **fields: Any
    ) -> pb.CareSettings:
        current = await self.settings()
        wanted = pb.CareSettings()
        wanted.CopyFrom(current)
        wanted.ClearField("holidays")
        for name, value in fields.items():
            if name == "holidays":
                wanted.holidays.extend(pb.Holiday(date=d, name=n) for d, n in value)
            else:
                setattr(wanted, name, value)
        reply = await self.care.SetCareSettings(
            pb.SetCareSettingsRequest(
                settings=wanted,
                expected_version=current.version if version is None else version,
            ),
            metadata=self.members.auth(user),
        )
        settings: pb.CareSettings = reply.settings
        return settings

    async def signals(self, user: str = "mia", **fields: Any) -> pb.ListCareSignalsResponse:
        reply: pb.ListCareSignalsResponse = await self.care.ListCareSignals(
            pb.ListCareSignalsRequest(community_id=self.id, **fields),
            metadata=self.members.auth(user),
        )
        return reply

    async def stored(self, kind: str) -> dict[str, list[date]]:
        """Each member's local days with a stored signal of `kind`."""
        async with self.members.deps.database.read() as session:
            rows = await session.execute(
                select(care_signals.c.user_id, care_signals.c.local_date)
                .where(care_signals.c.community_id == self.id, care_signals.c.kind == kind)
                .order_by(care_signals.c.local_date)
            )
            found: dict[str, list[date]] = {}
            for row in rows:
                found.setdefault(row.user_id, []).append(row.local_date)
            return found

    async def published(self, kind: str) -> list[tuple[str, Any]]:
        """(event id, decoded event) of each outbox row of `kind`'s event type."""
        message: type[Message] = {
            care.MEMBER_INACTIVE: events.MemberInactive,
            care.STREAK_AT_RISK: events.StreakAtRisk,
            care.GREETING: events.Greeting,
        }[kind]
        async with self.members.deps.database.read() as session:
            rows = await session.execute(
                select(outbox.c.event_id, outbox.c.payload, outbox.c.ce_subject).where(
                    outbox.c.community_id == self.id, outbox.c.event_type == EVENT_TYPES[kind]
                )
            )
            found = []
            for row in rows:
                event: Any = message.FromString(row.payload)
                assert row.ce_subject == f"communities/{self.id}/members/{event.user_id}"
                found.append((row.event_id, event))
            return found


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def set_last_active(members: RunningService, club: Club, user: str, at: datetime) -> None:
    await joins_marked_as_activity(members, club.id)
    async with members.deps.database.write() as session:
        await upsert(
            session,
            member_activity,
            [{"community_id": club.id, "user_id": user, "points_total": 1, "last_active_at": at}],
            ["community_id", "user_id"],
        )


def midday(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


# --- Settings ---


async def test_settings_start_from_the_defaults_and_only_admins_change_them(
    members: RunningService,
) -> None:
    club = await Club.create(members)
    await club.join("ana")
    defaults = await club.settings()
    assert (defaults.inactive_after_days, defaults.streak_reminder_hour) == (14, 20)
    assert (defaults.birthdays, list(defaults.holidays), defaults.version) == (True, [], 0)

    changed = await club.set_settings(
        inactive_after_days=30,
        streak_reminder_hour=18,
        birthdays=False,
        holidays=[("12-25", "Christmas"), ("2027-01-01", "Launch day")],
    )
    assert (changed.inactive_after_days, changed.streak_reminder_hour) == (30, 18)
    assert [(h.date, h.name) for h in changed.holidays] == [
        ("12-25", "Christmas"),
        ("2027-01-01", "Launch day"),
    ]
    assert (changed.birthdays, changed.version) == (False, 1)
    assert await club.settings() == changed

    # Moderators read but may not change; members may not even read.
    moderator = await refused(club.set_settings("mia", inactive_after_days=1))
    assert moderator.code() == grpc.StatusCode.PERMISSION_DENIED
    member = await refused(club.settings("ana"))
    assert member.code() == grpc.StatusCode.PERMISSION_DENIED
    listing = await refused(club.signals("ana"))
    assert listing.code() == grpc.StatusCode.PERMISSION_DENIED
    stranger = await refused(club.settings("zed"))
    assert stranger.code() == grpc.StatusCode.PERMISSION_DENIED

    # A change made from an old read is refused rather than overwriting the newer one.
    stale = await refused(club.set_settings(inactive_after_days=7, version=0))
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "version" in (stale.details() or "")
    assert await club.settings() == changed


async def test_bad_settings_name_every_field_and_change_nothing(members: RunningService) -> None:
    club = await Club.create(members)
    before = await club.settings()
    error = await refused(
        club.set_settings(
            inactive_after_days=400,
            streak_reminder_hour=24,
            holidays=[("02-30", "Nope"), ("12-25", ""), ("13-01", "x" * 81)],
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {
        "settings.inactive_after_days",
        "settings.streak_reminder_hour",
        "settings.holidays[0].date",
        "settings.holidays[1].name",
        "settings.holidays[2].date",
        "settings.holidays[2].name",
    }
    many = await refused(club.set_settings(holidays=[("01-01", "New year")] * 51))
    assert set(field_violations(many)) == {"settings.holidays"}
    assert await club.settings() == before
    async with members.deps.database.read() as session:
        rows = await session.execute(
            select(care_settings.c.community_id).where(care_settings.c.community_id == club.id)
        )
        assert rows.all() == []


# --- Inactive members, once however many sweeps run ---


async def test_inactive_members_are_signalled_once_by_concurrent_and_restarted_sweeps(
    members: RunningService, database_url: str
) -> None:
    club = await Club.create(members)
    await club.join("ana", "ben", "cal", "dan", "eve")
    await club.mute("dan")
    await club.leave("eve")
    now = datetime.now(UTC) + timedelta(days=15)
    await set_last_active(members, club, "ana", now - timedelta(days=20))
    await set_last_active(members, club, "ben", now - timedelta(days=1))
    # cal, olga and mia never did anything and joined 15 days before `now`.

    # Two sweepers on the same database at once, as two replicas would run them.
    other = Database(database_url)
    try:
        await asyncio.gather(sweep_once(members.deps.database, now), sweep_once(other, now))
    finally:
        await other.close()
    # A restarted process sweeps again.
    restarted = Database(database_url)
    try:
        await sweep_once(restarted, now + timedelta(minutes=5))
    finally:
        await restarted.close()

    expected = {"ana", "cal", "olga", "mia"}
    today = now.date()
    assert await club.stored(care.MEMBER_INACTIVE) == {user: [today] for user in expected}
    published = await club.published(care.MEMBER_INACTIVE)
    assert sorted(event.user_id for _, event in published) == sorted(expected)
    for event_id, event in published:
        assert event_id == care.signal_id(club.id, event.user_id, care.MEMBER_INACTIVE, today)
        assert (event.community_id, event.local_date) == (club.id, today.isoformat())
    by_user = {event.user_id: event.days_inactive for _, event in published}
    assert (by_user["ana"], by_user["cal"]) == (20, 15)

    # Still inactive the next day: the nudge for this stretch was already sent.
    assert await sweep_once(members.deps.database, now + timedelta(days=1)) == 0
    # Active again, then quiet again for the threshold: a new stretch, a new nudge.
    await set_last_active(members, club, "ana", now + timedelta(days=2))
    later = now + timedelta(days=17)
    await sweep_once(members.deps.database, later)
    stored = await club.stored(care.MEMBER_INACTIVE)
    assert (stored["ana"], stored["ben"]) == ([today, later.date()], [later.date()])

    # Off means off.
    await club.set_settings(inactive_after_days=0)
    await set_last_active(members, club, "ben", later)
    assert await sweep_once(members.deps.database, later + timedelta(days=30)) == 0
    assert (await club.stored(care.MEMBER_INACTIVE))["ben"] == [later.date()]


# --- Streaks at risk, in each member's day ---


async def test_a_streak_is_at_risk_from_the_reminder_hour_of_the_members_own_day(
    members: RunningService,
) -> None:
    club = await Club.create(members)  # the community keeps UTC
    await club.join("ana", "ben", "cal", "dan")
    await club.profile("ana", ["time_zone"], time_zone=TOKYO)
    await club.set_settings(inactive_after_days=0)
    day = datetime.now(UTC).date() + timedelta(days=40)
    checked_in = datetime(day.year, day.month, day.day, 2, tzinfo=UTC)
    async with members.deps.database.write() as session:
        for user in ("ana", "ben", "cal", "dan"):
            await record_checkin(session, club.id, Identity(user), "", now=checked_in)
        # cal also checks in the next day, before the reminder.
        await record_checkin(
            session, club.id, Identity("cal"), "", now=checked_in + timedelta(days=1)
        )
    await club.mute("dan")
    next_day = day + timedelta(days=1)

    # 11:30 UTC is 20:30 in Tokyo: ana's evening, ben's (UTC) morning.
    await sweep_once(members.deps.database, checked_in + timedelta(days=1, hours=9, minutes=30))
    assert await club.stored(care.STREAK_AT_RISK) == {"ana": [next_day]}
    # 20:30 UTC: ben's evening; in Tokyo it is already the day after, ana's streak is gone.
    await sweep_once(members.deps.database, checked_in + timedelta(days=1, hours=18, minutes=30))
    assert await club.stored(care.STREAK_AT_RISK) == {"ana": [next_day], "ben": [next_day]}

    published = await club.published(care.STREAK_AT_RISK)
    assert sorted((e.user_id, e.local_date, e.streak_days) for _, e in published) == [
        ("ana", next_day.isoformat(), 1),
        ("ben", next_day.isoformat(), 1),
    ]

    # A later reminder hour holds the signal back until then.
    await club.set_settings(inactive_after_days=0, streak_reminder_hour=23)
    async with members.deps.database.write() as session:
        await record_checkin(
            session, club.id, Identity("ben"), "", now=checked_in + timedelta(days=1, hours=19)
        )
    third = checked_in + timedelta(days=2, hours=20)  # 22:00 UTC on day + 2
    await sweep_once(members.deps.database, third)
    assert await club.stored(care.STREAK_AT_RISK) == {"ana": [next_day], "ben": [next_day]}
    await sweep_once(members.deps.database, third + timedelta(hours=1, minutes=10))
    assert (await club.stored(care.STREAK_AT_RISK))["ben"] == [next_day, third.date()]


# --- Greetings, one community at a time ---


async def test_greetings_go_to_who_shows_a_birthday_and_to_everyone_on_a_holiday(
    members: RunningService,
) -> None:
    home = await Club.create(members)
    away = await Club.create(members)
    await home.join("ana", "ben", "dan", "eve")
    await away.join("ana", "ben")
    greet_day = datetime.now(UTC).date() + timedelta(days=50)
    birthday = ppb.Birthday(month=greet_day.month, day=greet_day.day, year=1990)
    paths = ["birthday", "birthday_visible"]
    await home.profile("ana", paths, birthday=birthday, birthday_visible=True)
    # ben gave his birthday but keeps it to himself: no birthday greeting for him.
    await home.profile("ben", paths, birthday=birthday, birthday_visible=False)
    # In the other community ana shows a different day, and ben the same one.
    other_day = greet_day + timedelta(days=3)
    await away.profile(
        "ana",
        paths,
        birthday=ppb.Birthday(month=other_day.month, day=other_day.day),
        birthday_visible=True,
    )
    await away.profile("ben", paths, birthday=birthday, birthday_visible=True)
    await home.set_settings(
        inactive_after_days=0, holidays=[(greet_day.isoformat()[5:], "Reading day")]
    )
    await away.set_settings(inactive_after_days=0)
    await home.mute("dan")
    await home.leave("eve")

    await sweep_once(members.deps.database, midday(greet_day))
    await sweep_once(members.deps.database, midday(greet_day) + timedelta(hours=1))

    home_greetings = {
        event.user_id: (event.occasion, event.holiday_name, event.local_date)
        for _, event in await home.published(care.GREETING)
    }
    day = greet_day.isoformat()
    holiday = (events.GREETING_OCCASION_HOLIDAY, "Reading day", day)
    assert home_greetings == {
        "ana": (events.GREETING_OCCASION_BIRTHDAY, "", day),
        "ben": holiday,
        "olga": holiday,
        "mia": holiday,
    }
    away_greetings = [(e.user_id, e.occasion) for _, e in await away.published(care.GREETING)]
    assert away_greetings == [("ben", events.GREETING_OCCASION_BIRTHDAY)]

    # Moderators see what was sent, a kind at a time, page by page.
    first = await home.signals(kind=pb.CARE_SIGNAL_KIND_GREETING, page_size=3)
    assert len(first.signals) == 3
    assert first.next_page_token
    rest = await home.signals(
        kind=pb.CARE_SIGNAL_KIND_GREETING, page_size=3, page_token=first.next_page_token
    )
    listed = [*first.signals, *rest.signals]
    assert sorted(s.user_id for s in listed) == ["ana", "ben", "mia", "olga"]
    assert not rest.next_page_token
    ana = next(s for s in listed if s.user_id == "ana")
    assert (ana.kind, ana.local_date, ana.occasion) == (
        pb.CARE_SIGNAL_KIND_GREETING,
        day,
        events.GREETING_OCCASION_BIRTHDAY,
    )
    assert ana.event_id == care.signal_id(home.id, "ana", care.GREETING, greet_day)
    assert (await home.signals(kind=pb.CARE_SIGNAL_KIND_STREAK_AT_RISK)).signals == []
    wrong = await refused(home.signals(page_token=first.next_page_token))
    assert set(field_violations(wrong)) == {"page_token"}

    # The member's export holds the signals sent to them; erasure removes them.
    export = await home.community.ExportMyData(
        mpb.ExportMyDataRequest(community_id=home.id), metadata=members.auth("ana")
    )
    sections = json.loads(export.document)["care_signals"]
    assert [(s["kind"], s["occasion"], s["local_date"]) for s in sections] == [
        ("greeting", "birthday", day)
    ]
    await home.community.EraseMyData(
        mpb.EraseMyDataRequest(community_id=home.id, confirm=True), metadata=members.auth("ana")
    )
    assert "ana" not in await home.stored(care.GREETING)
    assert "ben" in await away.stored(care.GREETING)


async def test_a_community_that_fails_does_not_stop_the_sweep(members: RunningService) -> None:
    broken = await Club.create(members)
    fine = await Club.create(members)
    async with members.deps.database.write() as session:
        # Settings this version cannot read (say, written by a newer release).
        await session.execute(
            care_settings.insert().values(
                community_id=broken.id,
                inactive_after_days=1,
                streak_reminder_hour=20,
                birthdays=True,
                holidays=[{"when": "01-01"}],
                version=1,
                updated_at=datetime.now(UTC),
            )
        )
    now = datetime.now(UTC) + timedelta(days=20)
    assert await sweep_once(members.deps.database, now) >= 2
    assert set(await fine.stored(care.MEMBER_INACTIVE)) == {"olga", "mia"}
    assert await broken.stored(care.MEMBER_INACTIVE) == {}


# --- Two replicas: two OS processes sweeping one database ---


async def test_two_replica_processes_greet_each_member_once(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path, tmp_path: Path
) -> None:
    """Both replicas sweep every 0.3 s for a while; each member gets one greeting."""
    async with running_service(
        SPEC,
        MembersSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
        care_sweep_seconds=0.3,
    ) as members:
        club = await Club.create(members)
        await club.join("ana", "ben", "cal")
        expected = {"olga", "mia", "ana", "ben", "cal"}
        with replicas(
            1, "members", tmp_path, database_url, redis_url, nats_url, care_sweep_seconds="0.3"
        ):
            today = datetime.now(UTC).date()
            await club.set_settings(
                inactive_after_days=0, holidays=[(today.isoformat()[5:], "Open day")]
            )

            async def everyone_greeted() -> bool:
                return set(await club.stored(care.GREETING)) == expected

            await eventually(everyone_greeted, "a greeting for every member", seconds=20)
            await asyncio.sleep(1.5)  # several more sweeps of both replicas
        greeted = [event.user_id for _, event in await club.published(care.GREETING)]
    assert sorted(greeted) == sorted(expected)
