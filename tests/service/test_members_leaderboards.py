"""Leaderboards: sums of the ledger per window in the community's own days, kept in Redis,
and the same answer when Redis lost them, missed a write or is not there at all."""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import grpc
import pytest

from services.kit.cache import ResilientRedis
from services.members.app import SPEC as MEMBERS
from services.members.recognition.awards import land
from services.members.recognition.leaderboards import BoardEntry, Leaderboards, Window, today_in
from services.members.recognition.points import Award
from services.members.settings import MembersSettings
from studyhall.members.v1 import recognition_service_pb2 as rpb
from tests.service.test_members_points import Hall, checked_in, open_hall, post_created, refused
from tests.support.errors import field_violations
from tests.support.services import RunningService, free_port, running_service

pytestmark = pytest.mark.service

WEEK, MONTH, EVER = (
    rpb.LEADERBOARD_WINDOW_LAST_7_DAYS,
    rpb.LEADERBOARD_WINDOW_LAST_30_DAYS,
    rpb.LEADERBOARD_WINDOW_ALL_TIME,
)


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


async def from_ledger(hall: Hall, window: rpb.LeaderboardWindow.ValueType) -> list[tuple[str, int]]:
    boards = Leaderboards(hall.running.deps.redis, hall.running.deps.database)
    zone = zoneinfo.ZoneInfo(hall.community.time_zone or "UTC")
    return await boards.from_ledger(hall.id, Window(window), zone, offset=0, limit=100)


async def seed(hall: Hall) -> None:
    """Points on several days: today, 3, 12 and 40 days ago."""
    await hall.join("mia", "ana", "ben", "cat")
    await hall.promote("mia")
    now = datetime.now(UTC)
    await hall.award("mia", "ana", 5, "today")
    await hall.deliver(post_created(hall, "ben", now - timedelta(days=3)))
    await hall.deliver(checked_in(hall, "cat", at=now - timedelta(days=12)))
    await hall.deliver(post_created(hall, "cat", now - timedelta(days=40)))
    await hall.deliver(post_created(hall, "ben", now - timedelta(days=40)))
    await hall.award("mia", "ben", 1, "kind words")


async def test_boards_sum_each_window_and_survive_flushall(members: RunningService) -> None:
    hall = await open_hall(members)
    await seed(hall)
    expected = {
        WEEK: [("ana", 5), ("ben", 3)],
        MONTH: [("ana", 5), ("ben", 3), ("cat", 1)],
        EVER: [("ben", 5), ("ana", 5), ("cat", 3)],
    }
    for window, board in expected.items():
        assert await hall.board(window) == board
        assert await from_ledger(hall, window) == board
    # Written incrementally now that the boards exist.
    await hall.award("mia", "cat", 4, "late bloomer")
    assert await hall.board(WEEK) == [("ana", 5), ("cat", 4), ("ben", 3)]

    await members.deps.redis.client.flushall()
    assert await hall.board(WEEK) == [("ana", 5), ("cat", 4), ("ben", 3)]
    for window in (MONTH, EVER):
        assert await hall.board(window) == await from_ledger(hall, window)
    assert await hall.board(EVER) == [("cat", 7), ("ben", 5), ("ana", 5)]


async def test_days_are_the_community_s_days_at_the_boundaries(members: RunningService) -> None:
    hall = await open_hall(members)
    zone_name = "Pacific/Kiritimati"  # UTC+14: its days start ten hours before UTC's
    await hall.set_time_zone(zone_name)
    hall.community.time_zone = zone_name
    await hall.join("ana", "ben")
    zone = zoneinfo.ZoneInfo(zone_name)
    first_day = today_in(zone) - timedelta(days=6)
    boundary = datetime.combine(first_day, time(), zone).astimezone(UTC)
    await hall.deliver(post_created(hall, "ana", boundary + timedelta(minutes=1)))
    await hall.deliver(post_created(hall, "ben", boundary - timedelta(minutes=1)))

    ledger = await hall.recognition.ListLedger(
        rpb.ListLedgerRequest(community_id=hall.id), metadata=members.auth("ana")
    )
    assert [entry.local_date for entry in ledger.entries] == [first_day.isoformat()]
    for _ in range(2):
        assert await hall.board(WEEK) == [("ana", 2)]
        assert await hall.board(MONTH) == [("ben", 2), ("ana", 2)]
        assert await from_ledger(hall, WEEK) == [("ana", 2)]
        await members.deps.redis.client.flushall()


async def test_without_redis_boards_come_from_the_ledger(
    database_url: str, nats_url: str, data_dir: Path
) -> None:
    async with running_service(
        MEMBERS,
        MembersSettings,
        database_url=database_url,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        nats_url=nats_url,
        data_dir=data_dir,
    ) as members:
        hall = await open_hall(members)
        await seed(hall)
        assert await hall.board(WEEK) == [("ana", 5), ("ben", 3)]
        assert await hall.board(EVER) == [("ben", 5), ("ana", 5), ("cat", 3)]


async def test_a_board_that_missed_a_write_is_rebuilt_when_redis_answers_again(
    members: RunningService,
) -> None:
    hall = await open_hall(members)
    await seed(hall)
    assert await hall.board(EVER) == [("ben", 5), ("ana", 5), ("cat", 3)]
    # The same boards, but their Redis is gone while an award commits.
    boards = Leaderboards(
        ResilientRedis(f"redis://127.0.0.1:{free_port()}/0"), members.deps.database
    )
    async with members.deps.database.write() as session:
        landed = await land(
            session,
            Award(
                community_id=hall.id,
                user_id="ana",
                amount=50,
                reason="manual",
                source_event_id=f"manual:{uuid.uuid4()}",
                created_at=datetime.now(UTC),
            ),
        )
    assert landed is not None
    entry = BoardEntry(hall.id, landed.entry.id, "ana", 50, landed.entry.local_date)
    await boards.record([entry], {hall.id: zoneinfo.ZoneInfo("UTC")})
    assert await hall.board(EVER) == [("ben", 5), ("ana", 5), ("cat", 3)]  # drifted

    boards.redis = members.deps.redis
    top = await boards.top(hall.id, Window.ALL_TIME, zoneinfo.ZoneInfo("UTC"), offset=0, limit=10)
    assert top == [("ana", 55), ("ben", 5), ("cat", 3)]
    assert await hall.board(EVER) == [("ana", 55), ("ben", 5), ("cat", 3)]


async def test_boards_page_and_are_for_readers_only(members: RunningService) -> None:
    hall = await open_hall(members, visibility=2)
    await seed(hall)
    first = await hall.recognition.GetLeaderboard(
        rpb.GetLeaderboardRequest(community_id=hall.id, window=EVER, page_size=2),
        metadata=members.auth("ana"),
    )
    assert [(e.rank, e.user_id) for e in first.entries] == [(1, "ben"), (2, "ana")]
    second = await hall.recognition.GetLeaderboard(
        rpb.GetLeaderboardRequest(
            community_id=hall.id, window=EVER, page_size=2, page_token=first.next_page_token
        ),
        metadata=members.auth("ana"),
    )
    assert [(e.rank, e.user_id, e.points) for e in second.entries] == [(3, "cat", 3)]
    assert second.next_page_token == ""

    # The edge refuses a page size outside the contract; the handler then names the rest.
    oversized = await refused(
        hall.recognition.GetLeaderboard(
            rpb.GetLeaderboardRequest(community_id=hall.id, page_size=101, page_token="x"),
            metadata=members.auth("ana"),
        )
    )
    assert set(field_violations(oversized)) == {"page_size"}
    bad = await refused(
        hall.recognition.GetLeaderboard(
            rpb.GetLeaderboardRequest(community_id=hall.id, page_size=100, page_token="x"),
            metadata=members.auth("ana"),
        )
    )
    assert set(field_violations(bad)) == {"window", "page_token"}

    private = await open_hall(members, visibility=3)
    outsider = await refused(
        private.recognition.GetLeaderboard(
            rpb.GetLeaderboardRequest(community_id=private.id, window=EVER),
            metadata=members.auth("zoe"),
        )
    )
    assert outsider.code() == grpc.StatusCode.NOT_FOUND
