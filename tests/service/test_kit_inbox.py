"""The inbox claims a batch's event ids in one statement: the ids it returns are the events to
apply, on each store, and a replica claiming an event another holds waits for its outcome."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import MetaData, func, select

from services.kit.database import Database
from services.kit.events.inbox import claim, inbox_table
from tests.harness.servers import PostgresHandle

pytestmark = pytest.mark.service

CONSUMER = "analytics-members"
TYPE = "studyhall.members.v1.MemberJoined"


async def _database(url: str) -> tuple[Database, MetaData]:
    metadata = MetaData()
    inbox_table(metadata)
    database = Database(url)
    async with database.writer.begin() as connection:
        await connection.run_sync(metadata.create_all)
    return database, metadata


async def test_a_claim_returns_the_ids_not_seen_before_and_keeps_them(database_url: str) -> None:
    database, metadata = await _database(database_url)
    table = metadata.tables["inbox"]
    try:
        async with database.write() as session:
            first = await claim(session, table, CONSUMER, [("e-2", TYPE), ("e-1", TYPE)])
        async with database.write() as session:
            # e-3 twice in one batch: the stream held the message twice.
            second = await claim(
                session, table, CONSUMER, [("e-1", TYPE), ("e-3", TYPE), ("e-3", TYPE)]
            )
            other = await claim(session, table, "content-access", [("e-1", TYPE)])
        async with database.write() as session:
            nothing = await claim(session, table, CONSUMER, [])
        async with database.read() as session:
            rows = await session.scalar(select(func.count()).select_from(table))
    finally:
        await database.close()
    assert first == {"e-1", "e-2"}
    assert second == {"e-3"}
    assert other == {"e-1"}  # each consumer has its own inbox
    assert nothing == set()
    assert rows == 4


async def test_a_claim_rolled_back_with_its_batch_is_claimed_again(database_url: str) -> None:
    database, metadata = await _database(database_url)
    table = metadata.tables["inbox"]
    try:

        async def failing_batch() -> None:
            async with database.write() as session:
                assert await claim(session, table, CONSUMER, [("e-1", TYPE)]) == {"e-1"}
                raise RuntimeError("the batch's effect failed")

        with pytest.raises(RuntimeError):
            await failing_batch()
        async with database.write() as session:
            again = await claim(session, table, CONSUMER, [("e-1", TYPE)])
    finally:
        await database.close()
    assert again == {"e-1"}


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_a_replica_claiming_an_event_another_holds_waits_for_its_outcome(
    postgres_database: tuple[PostgresHandle, str], outcome: str
) -> None:
    server, name = postgres_database
    first, metadata = await _database(server.database_url(name))
    second = Database(server.database_url(name))
    table = metadata.tables["inbox"]

    async def claim_in_second() -> set[str]:
        async with second.write() as session:
            return await claim(session, table, CONSUMER, [("e-1", TYPE), ("e-2", TYPE)])

    try:
        async with first._write_sessions() as session:
            await session.begin()
            assert await claim(session, table, CONSUMER, [("e-1", TYPE)]) == {"e-1"}
            waiting = asyncio.create_task(claim_in_second())
            done, _ = await asyncio.wait({waiting}, timeout=0.5)
            assert not done, "the second replica claimed an event the first still holds"
            if outcome == "commit":
                await session.commit()
            else:
                await session.rollback()
        claimed = await asyncio.wait_for(waiting, timeout=10)
    finally:
        await first.close()
        await second.close()
    assert claimed == ({"e-2"} if outcome == "commit" else {"e-1", "e-2"})
