"""Joins that arrive together commit together (services/members/joins.py, decision 0011),
and every caller still gets the answer it would get alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError

from services.kit.database import Database
from services.kit.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from services.kit.idempotency import IdempotentWriter
from services.members.communities.joins import JoinCommand, Joins
from services.members.store.tables import idempotency_keys, memberships, outbox
from studyhall.members.v1 import members_service_pb2 as pb
from tests.support.members import Hall
from tests.support.services import RunningService

pytestmark = pytest.mark.service


def _command(community_id: str, user: str, request_id: str = "", **fields: Any) -> JoinCommand:
    request = pb.JoinCommunityRequest(community_id=community_id, request_id=request_id, **fields)
    return JoinCommand.of(user, request)


@asynccontextmanager
async def own_database(members: RunningService) -> AsyncIterator[Database]:
    """The service's database through engines of the test's own, so that the commits counted
    are the joins' and not those of the service's relay and consumers."""
    database = Database(members.deps.settings.effective_database_url())
    try:
        yield database
    finally:
        await database.close()


@contextmanager
def counting_commits(database: Database) -> Iterator[list[int]]:
    commits: list[int] = []

    def on_commit(_connection: Any) -> None:
        commits.append(1)

    event.listen(database.writer.sync_engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(database.writer.sync_engine, "commit", on_commit)


async def _joined_events(database: Database, community_id: str) -> list[str]:
    async with database.read() as session:
        rows = await session.execute(
            select(outbox.c.ce_subject).where(
                outbox.c.community_id == community_id,
                outbox.c.event_type == "studyhall.members.v1.MemberJoined",
            )
        )
        return [subject.rsplit("/", 1)[1] for (subject,) in rows]


async def _active_members(database: Database, community_id: str) -> set[str]:
    async with database.read() as session:
        rows = await session.execute(
            select(memberships.c.user_id).where(
                memberships.c.community_id == community_id, memberships.c.active.is_(True)
            )
        )
        return {user for (user,) in rows}


async def test_a_burst_of_joins_commits_once_and_each_caller_gets_its_own_answer(
    members: RunningService,
) -> None:
    hall = await Hall.create(members)
    await hall.join("bram")
    await hall.moderate("olga", "bram", pb.MODERATION_ACTION_BAN)
    async with own_database(members) as database:
        await _burst(database, hall)


async def _burst(database: Database, hall: Hall) -> None:
    joins = Joins(database, IdempotentWriter(database, idempotency_keys))
    newcomers = [f"reader-{n}" for n in range(30)]
    commands = [
        *(_command(hall.id, user) for user in newcomers),
        _command(hall.id, "dana"),
        _command(hall.id, "dana"),  # the same person twice in one group
        _command(hall.id, "bram"),  # banned
        _command(str(uuid.uuid4()), "erin"),  # no such community
    ]
    with counting_commits(database) as commits:
        outcomes = await asyncio.gather(
            *(joins.join(command) for command in commands), return_exceptions=True
        )
    assert len(commits) == 1
    for user, outcome in zip(newcomers, outcomes, strict=False):
        assert isinstance(outcome, pb.JoinCommunityResponse)
        assert outcome.membership.user_id == user
        assert outcome.membership.active
    dana_first, dana_again, bram, erin = outcomes[30:]
    assert isinstance(dana_first, pb.JoinCommunityResponse)
    assert isinstance(dana_again, AlreadyExists)
    assert "already a member" in dana_again.message
    assert isinstance(bram, PermissionDenied)
    assert isinstance(erin, NotFound)
    assert await _active_members(database, hall.id) == {"olga", "dana", *newcomers}
    assert sorted(await _joined_events(database, hall.id)) == sorted(
        ["olga", "bram", "dana", *newcomers]
    )


async def test_a_join_the_database_refuses_fails_alone_and_the_rest_of_its_group_commits(
    members: RunningService,
) -> None:
    hall = await Hall.create(members)
    database = members.deps.database
    # A real refusal from the database itself, raised in the middle of the group's insert.
    async with database.write() as session:
        if database.is_sqlite:
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_mallory BEFORE INSERT ON memberships "
                    "WHEN NEW.user_id = 'mallory' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            await session.execute(
                text(
                    "CREATE FUNCTION refuse_mallory() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.user_id = 'mallory' THEN RAISE EXCEPTION 'refused'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_mallory BEFORE INSERT ON memberships "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_mallory()"
                )
            )
    async with own_database(members) as own:
        await _with_mallory(own, hall)


async def _with_mallory(database: Database, hall: Hall) -> None:
    joins = Joins(database, IdempotentWriter(database, idempotency_keys))
    users = ["ana", "ben", "mallory", "cai", "dov"]
    with counting_commits(database) as commits:
        outcomes = await asyncio.gather(
            *(joins.join(_command(hall.id, user)) for user in users), return_exceptions=True
        )
    # The group rolled back, then each join went alone: four commits, one failure.
    assert len(commits) == 4
    assert isinstance(outcomes[2], DBAPIError)
    assert all(
        isinstance(outcome, pb.JoinCommunityResponse)
        for index, outcome in enumerate(outcomes)
        if index != 2
    )
    assert await _active_members(database, hall.id) == {"olga", "ana", "ben", "cai", "dov"}
    assert sorted(await _joined_events(database, hall.id)) == ["ana", "ben", "cai", "dov", "olga"]


async def test_a_request_id_repeated_within_a_group_acts_once(members: RunningService) -> None:
    hall = await Hall.create(members)
    database = members.deps.database
    joins = Joins(database, IdempotentWriter(database, idempotency_keys))
    first, retry, other_payload = await asyncio.gather(
        joins.join(_command(hall.id, "fay", "join-1")),
        joins.join(_command(hall.id, "fay", "join-1")),
        joins.join(_command(hall.id, "fay", "join-1", answers=["something else"])),
        return_exceptions=True,
    )
    assert isinstance(first, pb.JoinCommunityResponse)
    assert retry == first
    assert isinstance(other_payload, FailedPrecondition)
    assert "join-1" in other_payload.message
    # A later retry, in a group of its own, replays the stored answer.
    assert await joins.join(_command(hall.id, "fay", "join-1")) == first
    assert sorted(await _joined_events(database, hall.id)) == ["fay", "olga"]
    async with database.read() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(idempotency_keys)
            .where(idempotency_keys.c.caller == "fay")
        )
    assert stored == 1


async def test_concurrent_callers_events_each_continue_their_own_trace(
    members: RunningService,
) -> None:
    hall = await Hall.create(members)
    callers = {f"tracer-{n}": uuid.uuid4().int for n in range(12)}

    async def join_traced(user: str, trace_id: int) -> None:
        parent = SpanContext(trace_id, 0x1234 + trace_id % 1000, False, TraceFlags(1))
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=set_span_in_context(NonRecordingSpan(parent)))
        await hall.stub.JoinCommunity(
            pb.JoinCommunityRequest(community_id=hall.id),
            metadata=[*hall.auth(user), *carrier.items()],
        )

    await asyncio.gather(*(join_traced(user, trace) for user, trace in callers.items()))
    async with members.deps.database.read() as session:
        rows = await session.execute(
            select(outbox.c.ce_subject, outbox.c.traceparent).where(
                outbox.c.community_id == hall.id,
                outbox.c.event_type == "studyhall.members.v1.MemberJoined",
            )
        )
        traces = {subject.rsplit("/", 1)[1]: traceparent for subject, traceparent in rows}
    for user, trace_id in callers.items():
        assert traces[user].split("-")[1] == f"{trace_id:032x}", user
