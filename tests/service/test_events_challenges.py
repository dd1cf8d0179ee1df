"""Learning challenges: an organizer sets the goal (days checked in, accepted answers, a path
finished) and the reward; members registered for the challenge make progress from members'
and content's facts over the real bus, counted by when they happened, once each, whatever
the order; completing it publishes ChallengeCompleted once, and members turns it into points
and the challenge_finisher badge once. Organizers invite a members' segment to an activity,
and its members find it among their activities."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select

from services.events.app import SPEC as EVENTS
from services.events.settings import EventsSettings
from services.events.store.tables import outbox
from services.kit.access import Role
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from services.members.store.tables import points_ledger
from studyhall.content.v1 import content_events_pb2 as content_events
from studyhall.events.v1 import activities_events_pb2 as events_pb
from studyhall.events.v1 import activities_service_pb2 as pb
from studyhall.events.v1 import activities_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import checkins_events_pb2 as checkins_events
from studyhall.members.v1 import profiles_service_pb2 as profiles_pb
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from studyhall.members.v1 import recognition_service_pb2 as recognition_pb
from studyhall.members.v1 import recognition_service_pb2_grpc as recognition_grpc
from tests.support import rpcs_events
from tests.support.access import grant
from tests.support.bus import bus
from tests.support.catalogue import STORES, new_database, serve
from tests.support.errors import field_violations
from tests.support.members import Hall
from tests.support.services import RunningService, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

DAY = timedelta(days=1)


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class Challenges:
    """Challenges of one community of the events service, organized by olga."""

    def __init__(self, events: RunningService, community_id: str) -> None:
        self.events = events
        self.id = community_id
        self.stub = pb_grpc.ActivitiesServiceStub(events.channel)
        # Far enough ahead for registering and setting the goal; the facts carry their
        # own times, so nothing waits for the challenge to run.
        self.start = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)

    async def plan(self, days: int = 30, kind: Any = pb.ACTIVITY_KIND_CHALLENGE) -> str:
        made = await self.stub.CreateActivity(
            pb.CreateActivityRequest(
                community_id=self.id,
                kind=kind,
                title="21 days of English",
                start_time=_at(self.start),
                end_time=_at(self.start + days * DAY),
                location="Room 1" if kind == pb.ACTIVITY_KIND_OFFLINE_MEETUP else "",
            ),
            metadata=self.events.auth("olga"),
        )
        return str(made.activity.id)

    async def goal(self, challenge_id: str, user: str = "olga", **fields: Any) -> pb.ChallengeGoal:
        reply = await self.stub.SetChallengeGoal(
            pb.SetChallengeGoalRequest(
                community_id=self.id, activity_id=challenge_id, goal=pb.ChallengeGoal(**fields)
            ),
            metadata=self.events.auth(user),
        )
        goal: pb.ChallengeGoal = reply.goal
        return goal

    async def join(self, challenge_id: str, *users: str) -> None:
        for user in users:
            await self.stub.Register(
                pb.RegisterRequest(community_id=self.id, activity_id=challenge_id),
                metadata=self.events.auth(user),
            )

    async def progress(self, challenge_id: str, user: str) -> pb.ChallengeProgress:
        reply = await self.stub.GetChallengeProgress(
            pb.GetChallengeProgressRequest(community_id=self.id, activity_id=challenge_id),
            metadata=self.events.auth(user),
        )
        progress: pb.ChallengeProgress = reply.progress
        return progress

    async def board(self, challenge_id: str, **fields: Any) -> pb.ListChallengeLeaderboardResponse:
        reply: pb.ListChallengeLeaderboardResponse = await self.stub.ListChallengeLeaderboard(
            pb.ListChallengeLeaderboardRequest(
                community_id=self.id, activity_id=challenge_id, **fields
            ),
            metadata=self.events.auth("cy"),
        )
        return reply

    async def completions(self) -> list[events_pb.ChallengeCompleted]:
        async with self.events.deps.database.read() as session:
            rows = await session.scalars(
                select(outbox.c.payload)
                .where(
                    outbox.c.community_id == self.id,
                    outbox.c.event_type == events_pb.ChallengeCompleted.DESCRIPTOR.full_name,
                )
                .order_by(outbox.c.seq)
            )
            return [events_pb.ChallengeCompleted.FromString(payload) for payload in rows]


def _check_in(community_id: str, user: str, at: datetime) -> checkins_events.CheckedIn:
    return checkins_events.CheckedIn(
        community_id=community_id,
        user_id=user,
        checkin_id=str(uuid.uuid4()),
        local_date=at.date().isoformat(),
        streak_days=1,
        checkin_time=_at(at),
    )


async def test_check_ins_arriving_late_twice_and_out_of_order_complete_a_challenge_once(
    database_url: str, second_database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    common: dict[str, Any] = {"redis_url": redis_url, "nats_url": nats_url, "data_dir": data_dir}
    async with (
        running_service(MEMBERS, MembersSettings, database_url=database_url, **common) as members,
        running_service(
            EVENTS, EventsSettings, database_url=second_database_url, **common
        ) as events,
        bus(nats_url, ["members", "events"]) as facts,
    ):
        hall = await Hall.create(members)
        for user in ("ann", "bob", "cy"):
            await hall.join(user)
        club = Challenges(events, hall.id)
        # Events learns the community and its members from members' facts.
        challenge: list[str] = []

        async def planned() -> bool:
            try:
                challenge.append(await club.plan())
            except grpc.aio.AioRpcError:
                return False
            return True

        await eventually(planned, "events knows olga owns the community")

        async def joined() -> bool:
            try:
                await club.join(challenge[0], "ann", "bob")
            except grpc.aio.AioRpcError:
                return False
            return True

        goal = await club.goal(
            challenge[0], kind=pb.CHALLENGE_GOAL_KIND_CHECK_IN_DAYS, target=3, reward_points=40
        )
        assert (goal.target, goal.reward_points, goal.version) == (3, 40, 1)
        await eventually(joined, "events knows ann and bob are members")

        days = [club.start + timedelta(days=n, hours=9) for n in range(4)]
        replay = [_check_in(hall.id, "ann", day) for day in days]
        replay.append(_check_in(hall.id, "ann", days[1] + timedelta(hours=5)))  # same day again
        replay.append(_check_in(hall.id, "ann", club.start - timedelta(hours=3)))  # before it
        replay.append(_check_in(hall.id, "cy", days[0]))  # not taking part
        replay += [_check_in(hall.id, "bob", day) for day in days[:2]]
        # Every fact twice (as a redelivery or a second relay would), in shuffled order.
        shuffled = replay * 2
        random.Random(7).shuffle(shuffled)
        for fact in shuffled:
            await facts.publish(fact)
        await facts.caught_up(["members"], "events-challenges")

        ann = await club.progress(challenge[0], "ann")
        assert (ann.progress, ann.target, ann.completed, ann.rank) == (4, 3, True, 1)
        # Completed with the third day, whatever order the days arrived in.
        assert ann.complete_time.ToDatetime(tzinfo=UTC) == days[2]
        bob = await club.progress(challenge[0], "bob")
        assert (bob.progress, bob.completed, bob.rank) == (2, False, 2)
        cy = await club.progress(challenge[0], "cy")
        assert (cy.progress, cy.rank) == (0, 0)
        board = await club.board(challenge[0])
        assert [(e.user_id, e.progress, e.rank) for e in board.entries] == [
            ("ann", 4, 1),
            ("bob", 2, 2),
        ]
        first = await club.board(challenge[0], page_size=1)
        rest = await club.board(challenge[0], page_size=1, page_token=first.next_page_token)
        assert [e.user_id for e in [*first.entries, *rest.entries]] == ["ann", "bob"]
        assert rest.next_page_token == ""

        exported = await club.stub.ExportMyData(
            pb.ExportMyDataRequest(community_id=hall.id), metadata=events.auth("ann")
        )
        [mine] = json.loads(exported.document)["challenges"]
        assert (mine["challenge_id"], mine["progress"]) == (challenge[0], 4)

        completed = await club.completions()
        assert [(c.challenge_id, c.user_id, c.reward_points) for c in completed] == [
            (challenge[0], "ann", 40)
        ]

        # Members awards the reward and the badge once, also when the completion arrives
        # again under another event id (a replayed dead letter, a rebuild).
        async def rewarded() -> bool:
            async with members.deps.database.read() as session:
                found = await session.scalar(
                    select(func.count())
                    .select_from(points_ledger)
                    .where(
                        points_ledger.c.community_id == hall.id,
                        points_ledger.c.user_id == "ann",
                        points_ledger.c.reason == "challenge_completed",
                    )
                )
            return found == 1

        await eventually(rewarded, "members awarded ann the challenge's points", seconds=20)
        await facts.publish(completed[0])
        await facts.caught_up(["events"], "members-recognition")
        assert await rewarded()
        standing = await recognition_grpc.RecognitionServiceStub(members.channel).GetStanding(
            recognition_pb.GetStandingRequest(community_id=hall.id, user_id="ann"),
            metadata=members.auth("ann"),
        )
        assert "challenge_finisher" in {badge.code for badge in standing.standing.badges}


@pytest.fixture(scope="module", params=STORES)
async def events(
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningService]:
    """One events service per store for the module (with its members peer); no relay or
    consumers run."""
    directory = tmp_path_factory.mktemp(f"challenges-{request.param}")
    with new_database(str(request.param), request, directory) as database_url:
        async with serve(
            rpcs_events.PROCESS,
            database_url=database_url,
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=directory,
        ) as running:
            yield running


async def _community(events: RunningService) -> Challenges:
    club = Challenges(events, str(uuid.uuid4()))
    await grant(events, club.id, "olga", Role.OWNER)
    for user in ("ann", "bob", "cy"):
        await grant(events, club.id, user, Role.MEMBER)
    return club


async def test_a_goal_is_checked_against_its_challenge_and_set_only_by_organizers(
    events: RunningService,
) -> None:
    club = await _community(events)
    challenge = await club.plan(days=30)

    async def refused(user: str = "olga", **fields: Any) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await club.goal(challenge, user=user, **fields)
        return error.value

    days = pb.CHALLENGE_GOAL_KIND_CHECK_IN_DAYS
    too_many = await refused(kind=days, target=31, reward_points=10)
    assert "goal.target" in field_violations(too_many)
    assert "goal.reward_points" in field_violations(await refused(kind=days, target=21))
    assert "goal.kind" in field_violations(await refused(target=21, reward_points=10))
    path = pb.CHALLENGE_GOAL_KIND_PATH_COMPLETED
    assert "goal.path_id" in field_violations(await refused(kind=path, reward_points=10))
    member = await refused("ann", kind=days, target=21, reward_points=10)
    assert member.code() == grpc.StatusCode.PERMISSION_DENIED
    meetup = await club.plan(kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP)
    with pytest.raises(grpc.aio.AioRpcError) as not_a_challenge:
        await club.goal(meetup, kind=days, target=2, reward_points=10)
    assert not_a_challenge.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await club.progress(challenge, "ann")).target == 0  # nothing written

    set_once = await club.goal(challenge, kind=days, target=21, reward_points=50)
    again = await club.goal(challenge, kind=days, target=20, reward_points=60)
    assert (set_once.version, again.version, again.target) == (1, 2, 20)
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await club.stub.GetChallengeProgress(
            pb.GetChallengeProgressRequest(
                community_id=club.id, activity_id=challenge, user_id="bob"
            ),
            metadata=events.auth("ann"),
        )
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Another community's challenge is not found.
    elsewhere = await _community(events)
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await elsewhere.board(challenge)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_activity_invited_to_a_segment_is_among_its_members_activities(
    events: RunningService,
) -> None:
    """The segment is asked of members (the peer) with the organizer's own token; the
    snapshot stays as taken."""
    members = events.peers["members"]
    hall = await Hall.create(members)
    for user in ("ada", "ben"):
        await hall.join(user)
    segment = await profiles_grpc.ProfilesServiceStub(members.channel).CreateSegment(
        profiles_pb.CreateSegmentRequest(
            community_id=hall.id, name="everyone", rule=json.dumps({"points_at_least": 0})
        ),
        metadata=hall.auth("olga"),
    )
    club = Challenges(events, hall.id)
    await grant(events, hall.id, "olga", Role.OWNER)
    for user in ("ada", "ben", "cy"):
        await grant(events, hall.id, user, Role.MEMBER)
    meetup = await club.plan(kind=pb.ACTIVITY_KIND_OFFLINE_MEETUP)

    invited = await club.stub.InviteSegment(
        pb.InviteSegmentRequest(
            community_id=hall.id, activity_id=meetup, segment_id=segment.segment.id
        ),
        metadata=events.auth("olga"),
    )
    assert invited.invitation.member_count == 3  # olga, ada, ben
    await hall.join("cy")  # joined after: not in the snapshot

    async def mine(user: str) -> list[tuple[str, bool]]:
        reply = await club.stub.ListMyActivities(
            pb.ListMyActivitiesRequest(community_id=hall.id), metadata=events.auth(user)
        )
        return [(entry.activity.id, entry.invited) for entry in reply.activities]

    assert await mine("ada") == [(meetup, True)]
    assert await mine("cy") == []
    async with events.deps.database.read() as session:
        kinds = await session.scalars(
            select(outbox.c.event_type).where(outbox.c.community_id == hall.id)
        )
        assert events_pb.ActivityInvited.DESCRIPTOR.full_name in set(kinds)

    # A moderator here whom members does not know as one may not have events list it.
    await grant(events, hall.id, "ben", Role.MODERATOR)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await club.stub.InviteSegment(
            pb.InviteSegmentRequest(
                community_id=hall.id, activity_id=meetup, segment_id=segment.segment.id
            ),
            metadata=events.auth("ben"),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await club.stub.InviteSegment(
            pb.InviteSegmentRequest(
                community_id=hall.id, activity_id=meetup, segment_id=str(uuid.uuid4())
            ),
            metadata=events.auth("olga"),
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_accepted_answers_and_a_finished_path_count_in_any_order(
    database_url: str, redis_url: str, nats_url: str, data_dir: Path
) -> None:
    """An acceptance taken back (a newer version) stops counting, also when it arrives
    first; a path finished during the challenge completes it, another path does not."""
    async with (
        running_service(
            EVENTS,
            EventsSettings,
            database_url=database_url,
            relay="external",
            redis_url=redis_url,
            nats_url=nats_url,
            data_dir=data_dir,
        ) as events,
        bus(nats_url, ["content"]) as facts,
    ):
        club = await _community(events)
        answers, path_challenge = await club.plan(days=7), await club.plan(days=7)
        path_id = str(uuid.uuid4())
        await club.goal(
            answers, kind=pb.CHALLENGE_GOAL_KIND_ACCEPTED_ANSWERS, target=2, reward_points=30
        )
        await club.goal(
            path_challenge,
            kind=pb.CHALLENGE_GOAL_KIND_PATH_COMPLETED,
            path_id=path_id,
            reward_points=20,
        )
        await club.join(answers, "ann", "bob")
        await club.join(path_challenge, "ann", "bob")
        during = club.start + timedelta(days=2)

        def accepted(user: str, answer: str, version: int) -> Any:
            return content_events.AnswerAccepted(
                community_id=club.id,
                question_id=str(uuid.uuid4()),
                answer_id=answer,
                answer_author_user_id=user,
                accepted_by_user_id="olga",
                version=version,
                accept_time=_at(during),
            )

        def unaccepted(user: str, answer: str, version: int) -> Any:
            return content_events.AnswerUnaccepted(
                community_id=club.id,
                answer_id=answer,
                answer_author_user_id=user,
                unaccepted_by_user_id="olga",
                version=version,
                unaccept_time=_at(during + timedelta(hours=1)),
            )

        def finished(user: str, path: str) -> Any:
            return content_events.PathCompleted(
                community_id=club.id, path_id=path, user_id=user, complete_time=_at(during)
            )

        first, second, third = (str(uuid.uuid4()) for _ in range(3))
        # bob's second acceptance was taken back: the retraction arrives before it.
        for fact in (
            unaccepted("bob", second, 3),
            accepted("bob", first, 2),
            accepted("bob", second, 2),
            accepted("ann", first, 2),
            accepted("ann", third, 2),
            accepted("ann", third, 2),
            finished("bob", str(uuid.uuid4())),
            finished("ann", path_id),
            finished("ann", path_id),
        ):
            await facts.publish(fact)
        await facts.caught_up(["content"], "events-challenges")

        assert (await club.progress(answers, "ann")).completed
        bob = await club.progress(answers, "bob")
        assert (bob.progress, bob.completed) == (1, False)
        assert (await club.progress(path_challenge, "ann")).completed
        assert not (await club.progress(path_challenge, "bob")).completed
        done = [(c.challenge_id, c.user_id) for c in await club.completions()]
        assert sorted(done) == sorted([(answers, "ann"), (path_challenge, "ann")])
