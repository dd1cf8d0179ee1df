"""Facts published straight into JetStream with the real envelope, fast: what a benchmark
needs when it wants a history or a background load without running the producing services.

    python -m bench.seeder --nats-url nats://127.0.0.1:4222 --events 200000
    python -m bench.seeder --nats-url ... --rate 1000 --seconds 60 --kinds joins,posts,checkins

As a library (bench.analytics, and the scale benchmark):

    async with Seeder.connect(nats_url) as seeder:
        population = Population(communities=1_000, members=100_000)
        await seeder.publish_all(population.opening(at))       # communities and owners
        await seeder.publish_all(population.history(200_000, start, end))
        await seeder.at_rate(population, 1_000, seconds=30)     # a live background load

Every event goes where its service's relay would put it: the subject
`studyhall.<service>.<community>.<EventName>`, the stream of its proto package's service
(services/kit/events/streams.py), CloudEvents headers from services/kit/events/envelope.py.
Publishes are pipelined: up to `max_in_flight` wait for their PubAck at once, and a refused
publish stops the run rather than leaving a hole in the history.

`Population` keeps just enough state for the facts to make sense together: a member joins
before posting, comments and reactions name earlier posts, a check-in's streak grows on
consecutive days, registrations name an activity of the community. Communities differ in
size (a few big ones, many small: a Zipf-like choice), and the same random seed gives the
same facts.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import nats
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from nats.js.api import PubAck

from services.kit.events.connection import servers
from services.kit.events.envelope import Envelope, event_subject
from services.kit.events.streams import StreamLimits, ensure_stream, service_stream
from studyhall.content.v1 import content_events_pb2 as content
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.events.v1 import activities_events_pb2 as activities
from studyhall.events.v1 import activities_service_pb2 as activities_pb
from studyhall.members.v1 import checkins_events_pb2 as checkins
from studyhall.members.v1 import members_events_pb2 as members
from studyhall.members.v1 import members_service_pb2 as members_pb

# The streams analytics reads: the seeder creates them all, as their services would.
STREAMS = ("members", "content", "events", "billing")

# How often each kind of fact happens, relative to the others: reading a community is
# mostly reacting and commenting, a few post, fewer join, activities are rare.
MIX: dict[str, float] = {
    "joins": 10,
    "posts": 8,
    "comments": 20,
    "reactions": 35,
    "checkins": 18,
    "registrations": 8,
    "activities": 1,
}
# The background load of bench.analytics' freshness run (issue 23).
LIVE_KINDS = ("joins", "posts", "checkins")

_POST_KINDS = (
    content_pb.POST_KIND_ARTICLE,
    content_pb.POST_KIND_ARTICLE,
    content_pb.POST_KIND_QUESTION,
    content_pb.POST_KIND_VIDEO,
    content_pb.POST_KIND_LINK,
)
_ACTIVITY_KINDS = (
    activities_pb.ACTIVITY_KIND_ONLINE_LECTURE,
    activities_pb.ACTIVITY_KIND_OFFLINE_MEETUP,
    activities_pb.ACTIVITY_KIND_EXPERT_AMA,
)
# Posts and activities a community remembers for comments, reactions and registrations.
_RECENT = 200


def service_of(event: Message) -> str:
    """The producing service: `studyhall.<service>.v1` is the event's proto package."""
    return event.DESCRIPTOR.full_name.split(".")[1]


def stamp(moment: float) -> Timestamp:
    """A protobuf Timestamp from POSIX seconds (cheaper than going through datetime)."""
    seconds = int(moment)
    return Timestamp(seconds=seconds, nanos=int((moment - seconds) * 1e9))


@dataclass
class _Community:
    id: str
    owner: str
    members: list[str] = field(default_factory=list)
    joined: set[str] = field(default_factory=set)
    posts: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT))
    questions: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT))
    activities: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT))


class Population:
    """Communities and members that produce a plausible stream of facts."""

    def __init__(
        self,
        *,
        communities: int = 1_000,
        members: int = 100_000,
        seed: int = 23,
        mix: dict[str, float] | None = None,
        skew: float = 0.8,
    ) -> None:
        self.rng = random.Random(seed)
        self.communities = [
            _Community(id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), owner="")
            for _ in range(communities)
        ]
        for number, community in enumerate(self.communities):
            community.owner = f"owner-{number}"
        self.users = [f"user-{number}" for number in range(members)]
        # A few big communities, many small ones.
        self._sizes = list(
            itertools.accumulate(1 / (rank + 1) ** skew for rank in range(communities))
        )
        self.mix = dict(mix or MIX)
        self._streaks: dict[tuple[str, str], tuple[date, int]] = {}
        self._ids = itertools.count()

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def community(self) -> _Community:
        point = self.rng.random() * self._sizes[-1]
        return self.communities[bisect.bisect_left(self._sizes, point)]

    def opening(self, at: float) -> Iterator[Message]:
        """Every community created, its owner joined: what the history starts with."""
        when = stamp(at)
        for community in self.communities:
            yield members.CommunityCreated(
                community_id=community.id,
                owner_user_id=community.owner,
                visibility=members_pb.VISIBILITY_PUBLIC,
                join_policy=members_pb.JOIN_POLICY_OPEN,
                version=1,
                create_time=when,
                time_zone="UTC",
            )
            yield self._join(community, community.owner, when, members_pb.ROLE_OWNER)

    def _join(self, community: _Community, user: str, when: Timestamp, role: int) -> Message:
        community.members.append(user)
        community.joined.add(user)
        return members.MemberJoined(
            community_id=community.id,
            user_id=user,
            role=role,  # type: ignore[arg-type]
            version=1,
            join_time=when,
        )

    def event(self, at: float, kinds: Sequence[str] | None = None) -> Message:
        """The next fact, happening at POSIX time `at`, of one of `kinds` (the mix's
        weights); a fact that needs what a community lacks yet becomes a join."""
        chosen = kinds or tuple(self.mix)
        kind = self.rng.choices(chosen, weights=[self.mix.get(k, 1.0) for k in chosen])[0]
        community = self.community()
        when = stamp(at)
        member = self.rng.choice(community.members) if community.members else community.owner
        if kind == "posts":
            post_id = self._id()
            kind_of_post = self.rng.choice(_POST_KINDS)
            (community.questions if kind_of_post == _POST_KINDS[2] else community.posts).append(
                post_id
            )
            return content.PostCreated(
                community_id=community.id,
                post_id=post_id,
                author_user_id=member,
                create_time=when,
                version=1,
                kind=kind_of_post,
                topic_id=f"topic-{self.rng.randrange(8)}",
            )
        if kind == "comments" and (community.posts or community.questions):
            answering = bool(community.questions) and self.rng.random() < 0.3
            post_id = self.rng.choice(
                community.questions if answering else community.posts or community.questions
            )
            return content.CommentAdded(
                community_id=community.id,
                comment_id=self._id(),
                post_id=post_id,
                author_user_id=member,
                is_answer=answering,
                create_time=when,
                version=1,
            )
        if kind == "reactions" and community.posts:
            return content.ReactionAdded(
                community_id=community.id,
                post_id=self.rng.choice(community.posts),
                user_id=member,
                kind=content_pb.REACTION_KIND_LIKE,
                react_time=when,
            )
        if kind == "checkins":
            return self._checkin(community, member, at, when)
        if kind == "activities":
            activity_id = self._id()
            community.activities.append(activity_id)
            return activities.ActivityCreated(
                activity_id=activity_id,
                community_id=community.id,
                host_user_id=community.owner,
                kind=self.rng.choice(_ACTIVITY_KINDS),
                start_time=stamp(at + 7 * 86400),
                end_time=stamp(at + 7 * 86400 + 3600),
                capacity=100,
                version=1,
                create_time=when,
            )
        if kind == "registrations" and community.activities:
            return activities.Registered(
                registration_id=self._id(),
                activity_id=self.rng.choice(community.activities),
                community_id=community.id,
                user_id=member,
                version=1,
                register_time=when,
            )
        return self._newcomer(community, when)

    def _newcomer(self, community: _Community, when: Timestamp) -> Message:
        for _ in range(8):
            user = self.rng.choice(self.users)
            if user not in community.joined:
                return self._join(community, user, when, members_pb.ROLE_MEMBER)
        # A community that holds nearly everyone: a fresh name.
        return self._join(community, f"user-x{next(self._ids)}", when, members_pb.ROLE_MEMBER)

    def _checkin(self, community: _Community, member: str, at: float, when: Timestamp) -> Message:
        day = datetime.fromtimestamp(at, UTC).date()
        last, streak = self._streaks.get((community.id, member), (None, 0))
        if last != day:
            streak = streak + 1 if last == day - timedelta(days=1) else 1
            self._streaks[(community.id, member)] = (day, streak)
        return checkins.CheckedIn(
            community_id=community.id,
            user_id=member,
            checkin_id=self._id(),
            local_date=day.isoformat(),
            streak_days=streak,
            checkin_time=when,
        )

    def history(self, count: int, start: float, end: float) -> Iterator[tuple[Message, float]]:
        """`count` facts spread evenly from POSIX time `start` to `end`, each with its time."""
        step = (end - start) / max(count, 1)
        for number in range(count):
            at = start + number * step
            yield self.event(at), at


@dataclass
class Published:
    events: int = 0
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class Seeder:
    """Publishes facts with the real envelope, `max_in_flight` PubAcks outstanding at most."""

    def __init__(self, js: JetStreamContext, *, max_in_flight: int = 2_000) -> None:
        self.js = js
        self.max_in_flight = max_in_flight
        self._waiting: deque[asyncio.Future[PubAck]] = deque()
        self.published = Published()

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        nats_url: str,
        *,
        services: Sequence[str] = STREAMS,
        max_in_flight: int = 2_000,
        limits: StreamLimits | None = None,
    ) -> AsyncIterator[Seeder]:
        """A seeder on its own connection, the streams of `services` created as the
        services create them; whatever is in flight is acknowledged before it closes."""
        client = await nats.connect(servers(nats_url), name="bench-seeder")
        # nats-py's own bound stays above ours, so ours is the one that waits.
        js = client.jetstream(publish_async_max_pending=max_in_flight * 2)
        for service in services:
            await ensure_stream(js, service_stream(service, limits or StreamLimits()))
        seeder = cls(js, max_in_flight=max_in_flight)
        try:
            yield seeder
            await seeder.flush()
        finally:
            await client.close()

    async def publish(self, event: Message, at: float | None = None) -> str:
        """Send one fact (its CloudEvents time `at`, POSIX seconds, default now); returns its
        event id. Its PubAck is awaited later (flush, or when too many are in flight)."""
        service = service_of(event)
        community_id: str = event.community_id  # type: ignore[attr-defined]
        name = event.DESCRIPTOR.name
        envelope = Envelope(
            id=str(uuid.uuid4()),
            source=f"/studyhall/{service}",
            type=event.DESCRIPTOR.full_name,
            time=datetime.fromtimestamp(time.time() if at is None else at, UTC),
            subject=f"communities/{community_id}",
            community_id=community_id,
            data=event.SerializeToString(),
        )
        while len(self._waiting) >= self.max_in_flight:
            await self._waiting.popleft()
        self._waiting.append(
            await self.js.publish_async(
                event_subject(service, community_id, name),
                envelope.data,
                headers=envelope.headers(),
            )
        )
        counts = self.published.by_type
        counts[name] = counts.get(name, 0) + 1
        self.published.events += 1
        return envelope.id

    async def flush(self) -> None:
        """Until every fact sent so far is acknowledged by JetStream."""
        while self._waiting:
            await self._waiting.popleft()

    async def publish_all(
        self, events: Iterable[Message | tuple[Message, float]], *, say: bool = False
    ) -> Published:
        """Publish `events` (each alone, published now, or with its POSIX time) as fast as
        PubAcks come back; what this call published, and how fast."""
        started = time.perf_counter()
        shown = started
        before = self.published.events
        for item in events:
            event, at = item if isinstance(item, tuple) else (item, None)
            await self.publish(event, at)
            if say and self.published.events % 10_000 == 0:
                now = time.perf_counter()
                if now - shown >= 2:
                    shown = now
                    done = self.published.events - before
                    print(f"  seeded {done:,} events, {done / (now - started):,.0f}/s", flush=True)
        await self.flush()
        return Published(self.published.events - before, time.perf_counter() - started)

    async def at_rate(
        self,
        population: Population,
        events_per_second: float,
        seconds: float,
        *,
        kinds: Sequence[str] = LIVE_KINDS,
        stop: asyncio.Event | None = None,
    ) -> Published:
        """A live load: facts of `kinds` happening now, `events_per_second` on average, sent
        every 10 ms for `seconds` (or until `stop` is set). Falls behind rather than
        bursting when the broker is slower."""
        started = time.perf_counter()
        sent = 0
        while True:
            elapsed = time.perf_counter() - started
            if elapsed >= seconds or (stop is not None and stop.is_set()):
                break
            due = int(elapsed * events_per_second)
            now = time.time()
            while sent < due:
                await self.publish(population.event(now, kinds), now)
                sent += 1
            await asyncio.sleep(0.01)
        await self.flush()
        return Published(sent, time.perf_counter() - started)


async def seed_history(
    nats_url: str,
    population: Population,
    events: int,
    *,
    days: float = 30.0,
    say: bool = True,
) -> Published:
    """Opening facts then `events` more spread over the `days` before now, published."""
    end = time.time()
    start = end - days * 86400
    async with Seeder.connect(nats_url) as seeder:
        opening = await seeder.publish_all(population.opening(start - 3600))
        published = await seeder.publish_all(population.history(events, start, end), say=say)
    published.events += opening.events
    published.seconds += opening.seconds
    return published


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--communities", type=int, default=1_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--events", type=int, default=100_000, help="a history of this many")
    parser.add_argument("--days", type=float, default=30.0, help="the history's span")
    parser.add_argument("--rate", type=float, help="a live load of this many events/s instead")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the live load runs")
    parser.add_argument(
        "--kinds",
        default=",".join(LIVE_KINDS),
        help=f"the live load's kinds of facts, of {', '.join(MIX)}",
    )
    parser.add_argument("--in-flight", type=int, default=2_000, help="PubAcks awaited at once")
    options = parser.parse_args()
    population = Population(
        communities=options.communities, members=options.members, seed=options.seed
    )

    async def go() -> Published:
        if options.rate is None:
            return await seed_history(
                options.nats_url, population, options.events, days=options.days
            )
        kinds = [kind for kind in options.kinds.split(",") if kind]
        unknown = set(kinds) - set(MIX)
        if unknown:
            raise SystemExit(f"--kinds: unknown {', '.join(sorted(unknown))}")
        async with Seeder.connect(options.nats_url, max_in_flight=options.in_flight) as seeder:
            await seeder.publish_all(population.opening(time.time()))
            return await seeder.at_rate(population, options.rate, options.seconds, kinds=kinds)

    published = asyncio.run(go())
    print(
        f"published {published.events:,} events in {published.seconds:.1f} s "
        f"({published.rate:,.0f}/s)"
    )


if __name__ == "__main__":
    main()
