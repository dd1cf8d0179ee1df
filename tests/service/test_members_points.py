"""Recognition in a community: points from manual awards, kudos and the backbone's facts,
levels that move both ways and unlock privileges, badges earned once, nothing shared
between communities."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from services.content.app import SPEC as CONTENT
from services.content.settings import ContentSettings
from services.kit.access import Role
from services.kit.events.envelope import Envelope, new_event_id
from services.members.app import SPEC as MEMBERS
from services.members.recognition.consumers import PointsFromFacts
from services.members.recognition.leaderboards import Leaderboards
from services.members.settings import MembersSettings
from services.members.store.tables import member_activity, member_badges, outbox, points_ledger
from studyhall.content.v1 import content_events_pb2 as content_events
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.content.v1 import content_service_pb2_grpc as content_grpc
from studyhall.events.v1 import activities_events_pb2 as activities_events
from studyhall.members.v1 import checkins_events_pb2 as checkins_events
from studyhall.members.v1 import members_events_pb2 as members_events
from studyhall.members.v1 import members_service_pb2 as pb
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import recognition_events_pb2 as recognition_events
from studyhall.members.v1 import recognition_service_pb2 as rpb
from studyhall.members.v1 import recognition_service_pb2_grpc as rpb_grpc
from tests.support.access import grant
from tests.support.errors import field_violations
from tests.support.services import RunningService, running_service

pytestmark = pytest.mark.service


@pytest.fixture
async def members(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> AsyncIterator[RunningService]:
    async with running_service(
        MEMBERS,
        MembersSettings,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=data_dir,
    ) as running:
        yield running


class Hall:
    """One community in the members service and the ways to act in it as someone."""

    def __init__(self, running: RunningService, community: pb.Community) -> None:
        self.running = running
        self.members = pb_grpc.MembersServiceStub(running.channel)
        self.recognition = rpb_grpc.RecognitionServiceStub(running.channel)
        self.community = community
        self.id = community.id

    async def join(self, *users: str) -> None:
        for user in users:
            await self.members.JoinCommunity(
                pb.JoinCommunityRequest(community_id=self.id), metadata=self.running.auth(user)
            )

    async def promote(self, user: str, role: pb.Role.ValueType = pb.ROLE_MODERATOR) -> None:
        await self.members.ChangeRole(
            pb.ChangeRoleRequest(community_id=self.id, user_id=user, role=role),
            metadata=self.running.auth(self.community.owner_user_id),
        )

    async def award(
        self, giver: str, user: str, amount: int, reason: str = ""
    ) -> rpb.AwardPointsResponse:
        reply: rpb.AwardPointsResponse = await self.recognition.AwardPoints(
            rpb.AwardPointsRequest(
                community_id=self.id, user_id=user, amount=amount, reason=reason
            ),
            metadata=self.running.auth(giver),
        )
        return reply

    async def standing(self, user: str, *, asker: str | None = None) -> rpb.Standing:
        reply = await self.recognition.GetStanding(
            rpb.GetStandingRequest(community_id=self.id, user_id=user),
            metadata=self.running.auth(asker or user),
        )
        standing: rpb.Standing = reply.standing
        return standing

    async def board(self, window: rpb.LeaderboardWindow.ValueType) -> list[tuple[str, int]]:
        reply = await self.recognition.GetLeaderboard(
            rpb.GetLeaderboardRequest(community_id=self.id, window=window, page_size=100),
            metadata=self.running.auth(self.community.owner_user_id),
        )
        return [(entry.user_id, entry.points) for entry in reply.entries]

    async def set_time_zone(self, zone: str) -> None:
        await self.members.UpdateCommunity(
            pb.UpdateCommunityRequest(
                community=pb.Community(id=self.id, time_zone=zone),
                update_mask=FieldMask(paths=["time_zone"]),
            ),
            metadata=self.running.auth(self.community.owner_user_id),
        )

    async def deliver(self, event: Message, *, event_id: str = "") -> str:
        """Hands a fact to the recognition consumer as the backbone would, in one transaction."""
        envelope = fact(self.id, event, event_id=event_id)
        deps = self.running.deps
        points = PointsFromFacts(Leaderboards(deps.redis, deps.database))
        subscription = next(s for s in points.subscriptions() if type(event) in s.event_types)
        async with deps.database.write() as session:
            await subscription.apply(session, [(event, envelope)])
        await points.drain()
        return envelope.id

    async def deliver_batch(self, batch: list[tuple[Message, str]]) -> None:
        """Hands facts (with their event ids) to the consumer as one fetched batch."""
        deps = self.running.deps
        points = PointsFromFacts(Leaderboards(deps.redis, deps.database))
        [subscription] = [s for s in points.subscriptions() if s.name.endswith("-content")]
        async with deps.database.write() as session:
            await subscription.apply(
                session, [(event, fact(self.id, event, event_id=id)) for event, id in batch]
            )
        await points.drain()

    async def outbox_rows(self) -> list[Any]:
        """(event_type, payload) of every event staged for this community, in order."""
        async with self.running.deps.database.read() as session:
            return list(
                await session.execute(
                    select(outbox.c.event_type, outbox.c.payload)
                    .where(outbox.c.community_id == self.id)
                    .order_by(outbox.c.seq)
                )
            )

    async def told(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The recognition facts staged for this community, in order, without their ids."""
        said: list[tuple[str, tuple[Any, ...]]] = []
        for event_type, payload in await self.outbox_rows():
            name = event_type.rsplit(".", 1)[-1]
            if name == "PointsAwarded":
                m = recognition_events.PointsAwarded.FromString(payload)
                said.append((name, (m.user_id, m.amount, m.points_total)))
            elif name == "LevelChanged":
                c = recognition_events.LevelChanged.FromString(payload)
                said.append((name, (c.user_id, c.old_level, c.new_level, c.points_total)))
            elif name == "BadgeAwarded":
                b = recognition_events.BadgeAwarded.FromString(payload)
                said.append((name, (b.user_id, b.code)))
        return said

    async def ledger_rows(self, user: str | None = None) -> int:
        query = select(func.count()).where(points_ledger.c.community_id == self.id)
        if user is not None:
            query = query.where(points_ledger.c.user_id == user)
        async with self.running.deps.database.read() as session:
            return int(await session.scalar(query) or 0)

    async def staged(self, event_name: str) -> int:
        async with self.running.deps.database.read() as session:
            found = await session.scalar(
                select(func.count()).where(
                    outbox.c.community_id == self.id,
                    outbox.c.event_type == f"studyhall.members.v1.{event_name}",
                )
            )
        return int(found or 0)


def fact(community_id: str, event: Message, *, event_id: str = "") -> Envelope:
    return Envelope(
        id=event_id or new_event_id(),
        source="/studyhall/test",
        type=event.DESCRIPTOR.full_name,
        time=datetime.now(UTC),
        subject=f"communities/{community_id}",
        community_id=community_id,
        data=event.SerializeToString(),
    )


def stamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


def post_created(hall: Hall, author: str, at: datetime | None = None) -> Message:
    return content_events.PostCreated(
        community_id=hall.id,
        post_id=str(uuid.uuid4()),
        author_user_id=author,
        create_time=stamp(at or datetime.now(UTC)),
        version=1,
    )


def checked_in(hall: Hall, user: str, streak: int = 1, at: datetime | None = None) -> Message:
    moment = at or datetime.now(UTC)
    return checkins_events.CheckedIn(
        community_id=hall.id,
        user_id=user,
        checkin_id=str(uuid.uuid4()),
        local_date=moment.date().isoformat(),
        streak_days=streak,
        checkin_time=stamp(moment),
    )


async def open_hall(running: RunningService, owner: str = "olga", **fields: Any) -> Hall:
    reply = await pb_grpc.MembersServiceStub(running.channel).CreateCommunity(
        pb.CreateCommunityRequest(name=f"Hall {uuid.uuid4().hex[:8]}", topic="english", **fields),
        metadata=running.auth(owner),
    )
    return Hall(running, reply.community)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_moderator_awards_and_corrects_points_and_the_member_reads_the_ledger(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    await hall.join("mia", "ana", "ben")
    await hall.promote("mia")

    first = await hall.award("mia", "ana", 10, "hosted the speaking hour")
    assert first.entry.amount == 10
    assert first.entry.reason == "manual"
    assert first.entry.awarded_by_user_id == "mia"
    assert first.entry.note == "hosted the speaking hour"
    assert first.standing.points_total == 10
    assert first.standing.level == 2
    assert first.standing.next_level_points == 20
    correction = await hall.award("mia", "ana", -3, "counted twice")
    assert correction.standing.points_total == 7

    ledger = await hall.recognition.ListLedger(
        rpb.ListLedgerRequest(community_id=hall.id, page_size=1), metadata=members.auth("ana")
    )
    assert [entry.amount for entry in ledger.entries] == [-3]
    rest = await hall.recognition.ListLedger(
        rpb.ListLedgerRequest(community_id=hall.id, page_size=1, page_token=ledger.next_page_token),
        metadata=members.auth("ana"),
    )
    assert [entry.amount for entry in rest.entries] == [10]
    assert rest.next_page_token == ""
    by_moderator = await hall.recognition.ListLedger(
        rpb.ListLedgerRequest(community_id=hall.id, user_id="ana"), metadata=members.auth("mia")
    )
    assert len(by_moderator.entries) == 2

    nosy = await refused(
        hall.recognition.ListLedger(
            rpb.ListLedgerRequest(community_id=hall.id, user_id="ana"),
            metadata=members.auth("ben"),
        )
    )
    assert nosy.code() == grpc.StatusCode.PERMISSION_DENIED

    async with members.deps.database.read() as session:
        row = (
            await session.execute(
                select(member_activity).where(
                    member_activity.c.community_id == hall.id, member_activity.c.user_id == "ana"
                )
            )
        ).one()
    assert (row.points_total, row.level) == (7, 2)
    assert row.last_active_at is not None
    assert await hall.staged("PointsAwarded") == 2


async def test_moderator_awards_outside_the_rules_are_refused_and_change_nothing(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    await hall.join("mia", "ana")
    await hall.promote("mia")
    for amount in (0, 1001, -1001):
        error = await refused(hall.award("mia", "ana", amount, "why not"))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "amount" in field_violations(error)
    no_reason = await refused(hall.award("mia", "ana", 5))
    assert "reason" in field_violations(no_reason)
    stranger = await refused(hall.award("mia", "zoe", 5, "welcome"))
    assert stranger.code() == grpc.StatusCode.NOT_FOUND
    assert await hall.ledger_rows() == 0
    assert (await hall.standing("ana")).points_total == 0


async def test_members_give_kudos_once_a_day_to_someone_else_and_not_while_muted(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    await hall.join("ana", "ben", "cat")

    kudos = await hall.award("ana", "ben", 1, "great summary")
    assert kudos.entry.reason == "kudos"
    assert kudos.entry.source_event_id.startswith("kudos:ana:ben:")
    again = await refused(hall.award("ana", "ben", 1))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    to_self = await refused(hall.award("ana", "ana", 1))
    assert "user_id" in field_violations(to_self)
    too_much = await refused(hall.award("ana", "cat", 2, "very great"))
    assert "amount" in field_violations(too_much)
    negative = await refused(hall.award("ana", "cat", -1, "meh"))
    assert "amount" in field_violations(negative)

    await hall.members.ModerateMember(
        pb.ModerateMemberRequest(
            community_id=hall.id, user_id="cat", action=pb.MODERATION_ACTION_MUTE, reason="spam"
        ),
        metadata=members.auth("olga"),
    )
    muted = await refused(hall.award("cat", "ana", 1))
    assert muted.code() == grpc.StatusCode.PERMISSION_DENIED

    assert await hall.ledger_rows() == 1
    assert (await hall.standing("ben")).points_total == 1
    assert (await hall.standing("ana")).points_total == 0
    # Another recipient the same day is another fact.
    await hall.award("ana", "olga", 1)
    assert await hall.ledger_rows() == 2


async def test_the_same_fact_delivered_twice_awards_once(members: RunningService) -> None:
    hall = await open_hall(members)
    await hall.join("ana")
    event = checked_in(hall, "ana")
    event_id = await hall.deliver(event)
    await hall.deliver(event, event_id=event_id)
    await hall.deliver(post_created(hall, "ana"))
    assert await hall.ledger_rows("ana") == 2
    standing = await hall.standing("ana")
    assert standing.points_total == 3
    ledger = await hall.recognition.ListLedger(
        rpb.ListLedgerRequest(community_id=hall.id), metadata=members.auth("ana")
    )
    assert {entry.reason for entry in ledger.entries} == {"checked_in", "post_created"}
    assert event_id in {entry.source_event_id for entry in ledger.entries}


async def test_facts_about_people_who_are_not_members_earn_nothing(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    await hall.join("ana")
    await hall.members.LeaveCommunity(
        pb.LeaveCommunityRequest(community_id=hall.id), metadata=members.auth("ana")
    )
    await hall.deliver(post_created(hall, "ana"))
    await hall.deliver(checked_in(hall, "zoe"))
    assert await hall.ledger_rows() == 0


async def test_levels_move_up_and_down_and_unlock_privileges(members: RunningService) -> None:
    hall = await open_hall(members)
    await hall.join("mia", "ana", "ben")
    await hall.promote("mia")
    levels = await hall.recognition.GetLevels(
        rpb.GetLevelsRequest(community_id=hall.id), metadata=members.auth("ana")
    )
    assert [level.min_points for level in levels.levels] == [
        0, 5, 20, 65, 155, 515, 2015, 8015, 33015
    ]  # fmt: skip
    assert "give_kudos" in levels.privilege_catalogue

    forbidden = await refused(
        hall.recognition.SetLevels(
            rpb.SetLevelsRequest(community_id=hall.id, levels=[rpb.Level(min_points=0)]),
            metadata=members.auth("mia"),
        )
    )
    assert forbidden.code() == grpc.StatusCode.PERMISSION_DENIED
    for bad in (
        [rpb.Level(min_points=1)],
        [rpb.Level(min_points=0), rpb.Level(min_points=0)],
        [rpb.Level(min_points=0, privileges=["fly"])],
        [rpb.Level(min_points=n) for n in range(21)],
        [],
    ):
        error = await refused(
            hall.recognition.SetLevels(
                rpb.SetLevelsRequest(community_id=hall.id, levels=bad),
                metadata=members.auth("olga"),
            )
        )
        assert "levels" in field_violations(error)
    unchanged = await hall.recognition.GetLevels(
        rpb.GetLevelsRequest(community_id=hall.id), metadata=members.auth("ana")
    )
    assert unchanged.levels == levels.levels

    await hall.recognition.SetLevels(
        rpb.SetLevelsRequest(
            community_id=hall.id,
            levels=[
                rpb.Level(min_points=0),
                rpb.Level(min_points=3, privileges=["give_kudos"]),
                rpb.Level(min_points=10, privileges=["post_links"]),
            ],
        ),
        metadata=members.auth("olga"),
    )
    locked = await refused(hall.award("ana", "ben", 1))
    assert locked.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "give_kudos" in (locked.details() or "")

    up = await hall.award("mia", "ana", 12, "helped newcomers")
    assert up.standing.level == 3
    assert list(up.standing.privileges) == ["give_kudos", "post_links"]
    await hall.award("ana", "ben", 1)
    down = await hall.award("mia", "ana", -10, "points for a removed post")
    assert (down.standing.points_total, down.standing.level) == (2, 1)
    assert list(down.standing.privileges) == []
    assert down.standing.next_level_points == 3
    assert await hall.staged("LevelChanged") == 2

    # New thresholds move members at once, and say so.
    await hall.recognition.SetLevels(
        rpb.SetLevelsRequest(
            community_id=hall.id, levels=[rpb.Level(min_points=0), rpb.Level(min_points=2)]
        ),
        metadata=members.auth("olga"),
    )
    assert (await hall.standing("ana")).level == 2
    assert await hall.staged("LevelChanged") == 3


async def test_a_level_can_let_plain_members_create_invites(members: RunningService) -> None:
    hall = await open_hall(members)
    await hall.join("mia", "ana")
    await hall.promote("mia")
    invite = pb.CreateInviteRequest(community_id=hall.id, max_uses=3)
    # By default inviting is for moderators.
    denied = await refused(hall.members.CreateInvite(invite, metadata=members.auth("ana")))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    await hall.recognition.SetLevels(
        rpb.SetLevelsRequest(
            community_id=hall.id,
            levels=[
                rpb.Level(min_points=0),
                rpb.Level(min_points=5, privileges=["create_invites"]),
            ],
        ),
        metadata=members.auth("olga"),
    )
    still = await refused(hall.members.CreateInvite(invite, metadata=members.auth("ana")))
    assert still.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await hall.members.ListInvites(
        pb.ListInvitesRequest(community_id=hall.id), metadata=members.auth("mia")
    )
    assert list(listed.invites) == []

    await hall.award("mia", "ana", 5, "ran the reading circle")
    created = await hall.members.CreateInvite(invite, metadata=members.auth("ana"))
    assert created.invite.creator_user_id == "ana"


async def test_badges_are_earned_once_when_the_ledger_reaches_them(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    await hall.join("ana", "mia")
    await hall.promote("mia")
    for _ in range(11):
        await hall.deliver(post_created(hall, "ana"))
    await hall.deliver(checked_in(hall, "ana", streak=30))
    await hall.deliver(checked_in(hall, "ana", streak=31))
    await hall.award("mia", "ana", 100, "course finished")

    badges = await hall.recognition.ListBadges(
        rpb.ListBadgesRequest(community_id=hall.id, user_id="ana"), metadata=members.auth("mia")
    )
    codes = [badge.code for badge in badges.badges]
    assert sorted(codes) == ["first_post", "points_100", "posts_10", "streak_30"]
    assert await hall.staged("BadgeAwarded") == 4
    async with members.deps.database.read() as session:
        rows = await session.scalar(
            select(func.count()).where(member_badges.c.community_id == hall.id)
        )
    assert rows == 4
    standing = await hall.standing("ana", asker="mia")
    assert sorted(badge.code for badge in standing.badges) == sorted(codes)


async def test_a_batch_of_facts_lands_as_its_facts_one_by_one(members: RunningService) -> None:
    """A fetched batch is landed a statement per table; what it gives must be what its facts
    delivered one at a time give: totals after each award, every level crossed, each badge
    by the award that reached it, a fact repeated inside the batch counted once."""
    alone, together = await open_hall(members), await open_hall(members)
    for hall in (alone, together):
        await hall.join("ana", "ben")
        await hall.award(hall.community.owner_user_id, "ana", 3, "a head start")
    facts: list[tuple[str, str]] = [("ana" if n % 4 else "ben", new_event_id()) for n in range(14)]
    facts.insert(5, facts[2])  # redelivered inside the same batch
    for user, event_id in facts:
        await alone.deliver(post_created(alone, user), event_id=event_id)
    await together.deliver_batch([(post_created(together, user), id) for user, id in facts])

    said_alone, said_together = await alone.told(), await together.told()
    assert said_together == said_alone
    assert [e for e in said_alone if e[0] == "LevelChanged"] == [
        ("LevelChanged", ("ana", 1, 2, 5)),
        ("LevelChanged", ("ben", 1, 2, 6)),
        ("LevelChanged", ("ana", 2, 3, 21)),
    ]
    assert ("BadgeAwarded", ("ana", "posts_10")) in said_together
    for user in ("ana", "ben"):
        assert await together.ledger_rows(user) == await alone.ledger_rows(user)
        mine, theirs = await together.standing(user), await alone.standing(user)
        assert (mine.points_total, mine.level) == (theirs.points_total, theirs.level)
        assert sorted(b.code for b in mine.badges) == sorted(b.code for b in theirs.badges)


async def test_two_communities_with_the_same_members_never_mix(members: RunningService) -> None:
    english = await open_hall(members)
    exams = await open_hall(members)
    for hall in (english, exams):
        await hall.join("mia", "ana")
        await hall.promote("mia")
    await english.award("mia", "ana", 30, "essay")
    await english.deliver(post_created(english, "ana"))
    await exams.recognition.SetLevels(
        rpb.SetLevelsRequest(
            community_id=exams.id, levels=[rpb.Level(min_points=0), rpb.Level(min_points=1)]
        ),
        metadata=members.auth("olga"),
    )
    in_english = await english.standing("ana")
    in_exams = await exams.standing("ana")
    assert (in_english.points_total, in_english.level) == (32, 3)
    assert (in_exams.points_total, in_exams.level, list(in_exams.badges)) == (0, 1, [])
    assert await english.board(rpb.LEADERBOARD_WINDOW_ALL_TIME) == [("ana", 32)]
    assert await exams.board(rpb.LEADERBOARD_WINDOW_ALL_TIME) == []
    # A ledger is read within its community only.
    ledger = await exams.recognition.ListLedger(
        rpb.ListLedgerRequest(community_id=exams.id), metadata=members.auth("ana")
    )
    assert list(ledger.entries) == []


@pytest.fixture
async def platform(
    database_url: str,
    second_database_url: str,
    redis_url: str,
    nats_url: str,
    data_dir: Path,
) -> AsyncIterator[tuple[RunningService, RunningService]]:
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "data_dir": data_dir}
    async with (
        running_service(MEMBERS, MembersSettings, database_url=database_url, **common) as members,
        running_service(
            CONTENT, ContentSettings, database_url=second_database_url, **common
        ) as content,
    ):
        yield members, content


async def test_a_post_published_in_content_awards_its_author_through_the_backbone(
    platform: tuple[RunningService, RunningService],
) -> None:
    members, content = platform
    hall = await open_hall(members)
    await hall.join("ana")
    # Content's own projection of roles follows members' events; granted here directly so
    # this test is about the way back.
    await grant(content, hall.id, "ana", Role.MEMBER)
    posts = content_grpc.ContentServiceStub(content.channel)
    await posts.CreatePost(
        content_pb.CreatePostRequest(
            community_id=hall.id,
            kind=content_pb.POST_KIND_ARTICLE,
            title="Week 1 reading",
            body="Chapter 1",
            request_id="first-post",
        ),
        metadata=content.auth("ana"),
    )
    for _ in range(300):
        standing = await hall.standing("ana")
        if standing.points_total:
            break
        await asyncio.sleep(0.05)
    assert standing.points_total == 2
    assert [badge.code for badge in standing.badges] == ["first_post"]
    ledger = await hall.recognition.ListLedger(
        rpb.ListLedgerRequest(community_id=hall.id), metadata=members.auth("ana")
    )
    [entry] = ledger.entries
    assert entry.reason == "post_created"
    assert uuid.UUID(entry.source_event_id)
    for _ in range(100):
        if await hall.board(rpb.LEADERBOARD_WINDOW_LAST_7_DAYS) == [("ana", 2)]:
            break
        await asyncio.sleep(0.05)
    assert await hall.board(rpb.LEADERBOARD_WINDOW_LAST_7_DAYS) == [("ana", 2)]


async def test_answers_paths_attendance_and_challenges_earn_by_the_rule_table(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    await hall.join("ana", "ben")
    now = stamp(datetime.now(UTC))
    question, answer = str(uuid.uuid4()), str(uuid.uuid4())
    await hall.deliver(
        content_events.AnswerAccepted(
            community_id=hall.id,
            question_id=question,
            answer_id=answer,
            answer_author_user_id="ana",
            accepted_by_user_id="ben",
            version=2,
            accept_time=now,
        )
    )
    assert (await hall.standing("ana")).points_total == 5
    # Taking the acceptance back takes the points back, whatever order the two arrive in.
    await hall.deliver(
        content_events.AnswerUnaccepted(
            community_id=hall.id,
            question_id=question,
            answer_id=answer,
            answer_author_user_id="ana",
            unaccepted_by_user_id="ben",
            version=3,
            unaccept_time=now,
        )
    )
    assert (await hall.standing("ana")).points_total == 0
    assert (await hall.standing("ben")).points_total == 0

    path = {"community_id": hall.id, "path_id": str(uuid.uuid4()), "user_id": "ben"}
    await hall.deliver(content_events.PathCompleted(**path, complete_time=now))
    attended = {"community_id": hall.id, "activity_id": str(uuid.uuid4()), "user_id": "ben"}
    await hall.deliver(
        activities_events.AttendanceRecorded(
            **attended, registration_id=str(uuid.uuid4()), version=1, record_time=now
        )
    )
    standing = await hall.standing("ben")
    assert standing.points_total == 10 + 3
    assert "path_finisher" in {badge.code for badge in standing.badges}

    challenge = {"community_id": hall.id, "challenge_id": str(uuid.uuid4()), "user_id": "ana"}
    await hall.deliver(
        activities_events.ChallengeCompleted(**challenge, reward_points=50_000, complete_time=now)
    )
    await hall.deliver(
        activities_events.ChallengeCompleted(**challenge, reward_points=-7, complete_time=now)
    )
    ledger = await hall.recognition.ListLedger(
        rpb.ListLedgerRequest(community_id=hall.id), metadata=members.auth("ana")
    )
    amounts = {entry.reason: entry.amount for entry in ledger.entries}
    # A reward is clamped to 0..1000; a negative one earns nothing and adds no entry.
    assert amounts["challenge_completed"] == 1000
    assert sorted(entry.reason for entry in ledger.entries) == [
        "answer_accepted",
        "answer_unaccepted",
        "challenge_completed",
    ]


async def test_every_set_levels_publishes_the_whole_ladder_with_a_growing_version(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    await hall.set_time_zone("Asia/Shanghai")
    for gate in ("post_links", "create_activities"):
        await hall.recognition.SetLevels(
            rpb.SetLevelsRequest(
                community_id=hall.id,
                levels=[rpb.Level(min_points=0), rpb.Level(min_points=10, privileges=[gate])],
            ),
            metadata=members.auth("olga"),
        )
    rows = await hall.outbox_rows()
    created = members_events.CommunityCreated.FromString(
        next(row.payload for row in rows if row.event_type.endswith(".CommunityCreated"))
    )
    assert created.time_zone == hall.community.time_zone
    updated = members_events.CommunityUpdated.FromString(
        next(row.payload for row in rows if row.event_type.endswith(".CommunityUpdated"))
    )
    assert updated.time_zone == "Asia/Shanghai"
    ladders = [
        recognition_events.LevelsChanged.FromString(row.payload)
        for row in rows
        if row.event_type.endswith(".LevelsChanged")
    ]
    assert [ladder.version for ladder in ladders] == [1, 2]
    assert [list(level.privileges) for level in ladders[-1].levels] == [[], ["create_activities"]]
