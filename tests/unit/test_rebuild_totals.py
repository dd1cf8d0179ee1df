"""A rebuild's merge in memory (services/analytics/store/fresh.py): the rollups' rules, and
erasure resolved without a store to read tombstones from."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from services.analytics.facts import effects_of
from services.analytics.store.fresh import Totals
from services.analytics.store.rollups import COMMUNITIES, ROLLUPS, digest
from services.analytics.store.tables import member_days, member_states, posts
from services.kit.events.envelope import Envelope
from studyhall.content.v1 import content_events_pb2 as content
from studyhall.content.v1 import content_service_pb2 as content_pb
from studyhall.members.v1 import checkins_events_pb2 as checkins
from studyhall.members.v1 import members_events_pb2 as members
from tests.support.bus import envelope_of

pytestmark = pytest.mark.unit

D0 = datetime(2030, 3, 4, 8, tzinfo=UTC)
HALL = "hall"


def fact(event: Message, at: datetime = D0) -> tuple[Message, Envelope]:
    return event, envelope_of(event, at)


def stamp(moment: datetime) -> Timestamp:
    found = Timestamp()
    found.FromDatetime(moment)
    return found


def joined(user: str, version: int = 1, at: datetime = D0) -> tuple[Message, Envelope]:
    return fact(
        members.MemberJoined(community_id=HALL, user_id=user, version=version, join_time=stamp(at))
    )


def checked_in(user: str, at: datetime, streak: int = 1) -> tuple[Message, Envelope]:
    return fact(
        checkins.CheckedIn(
            community_id=HALL,
            user_id=user,
            checkin_id=str(uuid.uuid4()),
            streak_days=streak,
            checkin_time=stamp(at),
        ),
        at,
    )


def erased(user: str) -> tuple[Message, Envelope]:
    return fact(members.MemberErased(community_id=HALL, user_id=user, version=9))


def users(totals: Totals, table: object) -> set[str]:
    return {row["user_id"] for t, rows in totals.tables() if t is table for row in rows}


def test_a_member_erased_in_the_batch_of_her_facts_keeps_no_row_under_her_id() -> None:
    totals = Totals()
    totals.add(effects_of([joined("eve"), checked_in("eve", D0), erased("eve")]))
    [tombstone] = totals.tombstones
    assert tombstone["user_digest"] == digest(HALL, "eve")
    assert users(totals, member_states) == {tombstone["pseudonym"]}
    assert users(totals, member_days) == {tombstone["pseudonym"]}


def test_an_erasure_renames_what_came_before_and_her_late_facts_follow() -> None:
    totals = Totals()
    totals.add(effects_of([joined("eve"), checked_in("eve", D0, streak=2)]))
    totals.add(effects_of([checked_in("bob", D0), erased("eve")]))
    totals.add(effects_of([checked_in("eve", D0 + timedelta(hours=1), streak=3)]))
    [tombstone] = totals.tombstones
    pseudonym = tombstone["pseudonym"]
    assert users(totals, member_days) == {pseudonym, "bob"}
    [day] = [
        row
        for table, rows in totals.tables()
        if table is member_days
        for row in rows
        if row["user_id"] == pseudonym
    ]
    assert (day["checkins"], day["streak"]) == (2, 3)


def test_a_tombstone_copied_from_the_live_store_names_her_facts_and_draws_none() -> None:
    known = {"community_id": HALL, "user_digest": digest(HALL, "eve"), "pseudonym": "erased-x"}
    totals = Totals([known])
    totals.add(effects_of([joined("eve"), erased("eve")]))
    totals.add(effects_of([checked_in("eve", D0)]))
    assert totals.tombstones == []
    assert users(totals, member_states) == users(totals, member_days) == {"erased-x"}


def test_the_newer_version_wins_and_of_equal_ones_the_first() -> None:
    totals = Totals()
    totals.add(effects_of([joined("ann", version=3)]))
    left = members.MemberLeft(community_id=HALL, user_id="ann", version=2)
    totals.add(effects_of([fact(left)]))  # older: ignored
    banned = members.MemberBanned(community_id=HALL, user_id="ann", version=3)
    totals.add(effects_of([fact(banned)]))  # as new as the join: the join stays
    [state] = next(rows for table, rows in totals.tables() if table is member_states)
    assert (state["active"], state["version"]) == (True, 3)


def test_an_answer_before_its_question_keeps_its_time_and_the_post_its_description() -> None:
    answered = D0 + timedelta(hours=2)
    totals = Totals()
    totals.add(
        effects_of(
            [
                fact(
                    content.CommentAdded(
                        community_id=HALL,
                        post_id="p",
                        author_user_id="bob",
                        is_answer=True,
                        create_time=stamp(answered),
                    )
                )
            ]
        )
    )
    question = content.PostCreated(
        community_id=HALL,
        post_id="p",
        author_user_id="ann",
        kind=content_pb.POST_KIND_QUESTION,
        create_time=stamp(D0),
    )
    totals.add(effects_of([fact(question)]))
    [post] = next(rows for table, rows in totals.tables() if table is posts)
    assert (post["author_user_id"], post["kind"], post["first_answer_at"]) == (
        "ann",
        content_pb.POST_KIND_QUESTION,
        answered,
    )
    assert post["created_at"] == D0


def test_every_rollup_merges_by_the_rules_it_upserts_with() -> None:
    """The merge in memory and the upsert read the same declaration: each rollup names a
    rule for every column it adds up or compares, and the keys."""
    for rollup in (COMMUNITIES, *ROLLUPS):
        assert set(rollup.keys) == {column.name for column in rollup.table.primary_key}
        compared = {*rollup.add, *rollup.least, *rollup.greatest}
        assert compared.isdisjoint(rollup.keys)
        assert not (compared and rollup.newer)
