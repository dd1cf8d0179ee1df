"""A rebuild merges a whole history's effects in memory and writes each table once
(services/analytics/store/fresh.py); live consumers upsert batch by batch
(services/analytics/store/rollups.py). Given the same facts in the same order, cut into
batches anywhere, both must leave the same rows, on both stores.

The history mixes every kind of fact analytics reads, versions arriving out of order,
answers before their question, and a member erased in the middle whose late facts follow:
nobody erased her before, so the history itself draws her tombstone."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from services.analytics.app import SPEC
from services.analytics.consumers import apply_facts
from services.analytics.facts import effects_of
from services.analytics.rebuild import NOT_COMPARED
from services.analytics.store import fresh
from services.analytics.store.tables import member_days, metadata, tombstones
from services.kit.database import Database, utc
from services.kit.events.envelope import Envelope
from services.kit.migrations import migrate
from studyhall.billing.v1 import billing_events_pb2 as billing
from studyhall.billing.v1 import billing_service_pb2 as billing_pb
from studyhall.content.v1 import content_events_pb2 as content
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.events.v1 import activities_events_pb2 as activities
from studyhall.events.v1 import activities_service_pb2 as activities_pb
from studyhall.members.v1 import checkins_events_pb2 as checkins
from studyhall.members.v1 import members_events_pb2 as members
from tests.support.bus import envelope_of

pytestmark = pytest.mark.service

D0 = datetime(2030, 3, 4, 8, tzinfo=UTC)
COMMUNITIES = [str(uuid.UUID(int=n + 1)) for n in range(3)]
PEOPLE = ["ann", "bob", "cat", "dan", "eve", "fay"]
ERASED = (COMMUNITIES[0], "eve")

Event = tuple[Message, Envelope]


def stamp(moment: datetime) -> Timestamp:
    found = Timestamp()
    found.FromDatetime(moment)
    return found


def history(seed: int) -> list[Event]:
    """Some hundreds of facts over a week; eve is erased in the middle, facts about her
    keep coming."""
    draw = random.Random(seed)
    facts: list[Event] = []

    def fact(event: Message, at: datetime) -> None:
        facts.append((event, envelope_of(event, at)))

    def moment() -> datetime:
        return D0 + timedelta(minutes=draw.randrange(7 * 24 * 60))

    posts = [(draw.choice(COMMUNITIES), str(uuid.uuid4())) for _ in range(12)]
    activity_ids = {c: str(uuid.uuid4()) for c in COMMUNITIES}
    for c in COMMUNITIES:
        fact(
            members.CommunityCreated(
                community_id=c, owner_user_id="ann", topic="English ", version=1
            ),
            D0,
        )
        fact(members.CommunityUpdated(community_id=c, topic=f"english {c[-1]}", version=3), D0)
        fact(
            activities.ActivityCreated(
                community_id=c,
                activity_id=activity_ids[c],
                kind=activities_pb.ACTIVITY_KIND_ONLINE_LECTURE,
                version=1,
                start_time=stamp(D0 + timedelta(days=3)),
                create_time=stamp(D0),
            ),
            D0,
        )
    for step in range(400):
        if step == 250:
            c, user = ERASED
            fact(members.MemberErased(community_id=c, user_id=user, version=9), moment())
        c, user, at = draw.choice(COMMUNITIES), draw.choice(PEOPLE), moment()
        post_c, post_id = draw.choice(posts)
        kind = draw.randrange(12)
        if kind == 0:
            fact(
                members.MemberJoined(
                    community_id=c, user_id=user, version=draw.randrange(1, 6), join_time=stamp(at)
                ),
                at,
            )
        elif kind == 1:
            fact(
                members.MemberLeft(
                    community_id=c, user_id=user, version=draw.randrange(1, 6), leave_time=stamp(at)
                ),
                at,
            )
        elif kind == 2:
            fact(
                checkins.CheckedIn(
                    community_id=c,
                    user_id=user,
                    checkin_id=str(uuid.uuid4()),
                    streak_days=draw.randrange(1, 9),
                    checkin_time=stamp(at),
                ),
                at,
            )
        elif kind == 3:
            fact(
                content.PostCreated(
                    community_id=post_c,
                    post_id=post_id,
                    author_user_id=user,
                    kind=draw.choice([content_pb.POST_KIND_QUESTION, content_pb.POST_KIND_ARTICLE]),
                    topic_id=draw.choice(["", "t1"]),
                    create_time=stamp(at),
                ),
                at,
            )
        elif kind == 4:
            fact(
                content.CommentAdded(
                    community_id=post_c,
                    post_id=post_id,
                    author_user_id=user,
                    is_answer=draw.random() < 0.5,
                    create_time=stamp(at),
                ),
                at,
            )
        elif kind == 5:
            fact(
                content.ReactionAdded(
                    community_id=post_c, post_id=post_id, user_id=user, react_time=stamp(at)
                ),
                at,
            )
        elif kind == 6:
            fact(content.ContentViewed(community_id=post_c, post_id=post_id), at)
        elif kind == 7:
            registration = f"{c[-4:]}-{user}"
            fact(
                activities.Registered(
                    community_id=c,
                    registration_id=registration,
                    activity_id=activity_ids[c],
                    user_id=user,
                    version=draw.randrange(1, 4),
                    register_time=stamp(at),
                ),
                at,
            )
            if draw.random() < 0.5:
                fact(
                    activities.AttendanceRecorded(
                        community_id=c,
                        registration_id=registration,
                        activity_id=activity_ids[c],
                        user_id=user,
                        version=draw.randrange(1, 6),
                        record_time=stamp(at),
                    ),
                    at,
                )
        elif kind == 8:
            fact(
                activities.FeedbackSubmitted(
                    community_id=c,
                    feedback_id=f"{c[-4:]}-{user}",
                    activity_id=activity_ids[c],
                    user_id=user,
                    overall_rating=draw.randrange(1, 6),
                    version=draw.randrange(1, 4),
                    submit_time=stamp(at),
                ),
                at,
            )
        elif kind == 9:
            fact(
                billing.SubscriptionChanged(
                    community_id=c,
                    subscription_id=f"{c[-4:]}-{user}",
                    user_id=user,
                    state=draw.randrange(1, 4),  # type: ignore[arg-type]
                    price=billing_pb.Money(currency="USD", amount_minor=1000),
                    version=draw.randrange(1, 6),
                ),
                at,
            )
            fact(
                billing.MrrMoved(
                    community_id=c,
                    kind=draw.randrange(1, 3),  # type: ignore[arg-type]
                    amount_minor=draw.choice([1000, -1000]),
                    currency="USD",
                    move_time=stamp(at),
                ),
                at,
            )
        elif kind == 10:
            fact(
                billing.CheckoutCompleted(community_id=c, user_id=user, complete_time=stamp(at)),
                at,
            )
        else:
            fact(members.CommunityArchived(community_id=c, version=4, archive_time=stamp(at)), at)
    return facts


def batches(facts: list[Event], seed: int) -> Iterator[list[Event]]:
    """The facts in order, cut anywhere: as a live consumer's fetches might."""
    draw = random.Random(seed)
    at = 0
    while at < len(facts):
        size = draw.choice([1, 2, 7, 40, 150])
        yield facts[at : at + size]
        at += size


async def snapshot(database: Database) -> dict[str, set[tuple[Any, ...]]]:
    """Every compared table's rows, with pseudonyms (drawn at random) shown as the digest
    of the member they stand for."""
    async with database.read() as session:
        stand_for = {
            row.pseudonym: f"tombstone:{row.user_digest}"
            for row in await session.execute(select(tombstones))
        }
        found = {}
        for table in metadata.sorted_tables:
            if table.name in NOT_COMPARED:
                continue
            rows = await session.execute(select(table))
            found[table.name] = {
                tuple(
                    stand_for.get(value, value)
                    if isinstance(value, str)
                    else utc(value)
                    if isinstance(value, datetime)
                    else value
                    for value in row
                )
                for row in rows
            }
    return found


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_history_merged_in_memory_writes_the_rows_live_batches_upsert(
    database_url: str, second_database_url: str, seed: int
) -> None:
    facts = history(seed)
    live, rebuilt = Database(database_url), Database(second_database_url)
    try:
        for database in (live, rebuilt):
            await migrate(database, SPEC.migrations, service="analytics")
        for batch in batches(facts, seed):
            async with live.write() as session:
                await apply_facts(session, batch)
        totals = fresh.Totals()
        for batch in batches(facts, seed + 100):  # other cuts: merging must not care
            totals.add(effects_of(batch))
        async with rebuilt.write() as session:
            await fresh.write(session, totals)

        ours, theirs = await snapshot(live), await snapshot(rebuilt)
        assert {name: len(rows) for name, rows in theirs.items()} == {
            name: len(rows) for name, rows in ours.items()
        }
        for name in ours:
            assert theirs[name] == ours[name], name
        assert sum(map(len, ours.values())) > 300
        # eve's tombstone was drawn by the history, and nothing names her in that community
        # any more (she is still herself in the others).
        assert len(ours["tombstones"]) == 1
        async with rebuilt.read() as session:
            named = set(
                await session.scalars(
                    select(member_days.c.user_id).where(member_days.c.community_id == ERASED[0])
                )
            )
        assert ERASED[1] not in named
        assert any(name.startswith("erased-") for name in named)
    finally:
        await live.close()
        await rebuilt.close()
