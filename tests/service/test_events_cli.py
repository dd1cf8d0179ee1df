"""`studyhall activity` against a running events service: plan, list, register and cancel
(the seat goes to the waitlist), check in by the venue's code, give feedback and read the
summary, export the calendar, set a challenge's goal and follow it, invite a segment, sell a
ticket; errors exit non-zero naming the field. The CLI runs in a thread of this process
(typer's runner), which keeps each command to milliseconds."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest

from services.kit.access import Role
from studyhall.members.v1 import profiles_service_pb2 as profiles_pb
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from tests.support import rpcs_events
from tests.support.access import grant
from tests.support.cli import Cli, Served, served_on_sqlite
from tests.support.members import Hall

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
async def served(
    redis_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    directory: Path = tmp_path_factory.mktemp("events-cli")
    async with served_on_sqlite(
        rpcs_events.PROCESS, "events", directory, redis_url, nats_url
    ) as found:
        yield found


async def test_an_activity_from_plan_to_feedback_through_the_cli(served: Served) -> None:
    events = served.running
    community_id = str(uuid.uuid4())
    await grant(events, community_id, "host", Role.MODERATOR)
    for member in ("ann", "bob"):
        await grant(events, community_id, member, Role.MEMBER)
    cli = Cli(served)
    start = datetime.now(UTC) + timedelta(seconds=10)  # each CLI call below is a process start
    made = await cli.json(
        "activity", "create", community_id, "--title", "Reading club", "--kind", "offline-meetup",
        "--location", "Library", "--capacity", "1", "--remind", "1h", "--remind", "90m",
        "--start", start.isoformat(), "--end", (start + timedelta(hours=1)).isoformat(),
        "--as", "host",
    )  # fmt: skip
    activity_id = made["id"]
    assert [made["reminder_offsets"], made["capacity"]] == [["5400s", "3600s"], 1]

    assert (await cli.ok("activity", "register", community_id, activity_id, "--as", "ann")) == (
        "seated\n"
    )
    assert (await cli.ok("activity", "register", community_id, activity_id, "--as", "bob")) == (
        "waitlisted #1\n"
    )
    listed = await cli.json("activity", "list", community_id, "--as", "ann")
    [shown] = listed["activities"]
    assert (shown["id"], shown["seats_taken"], shown["waitlist_length"]) == (activity_id, 1, 1)
    table = await cli.ok("activity", "list", community_id, "--mine", "--as", "bob")
    assert "Reading club" in table
    assert "waitlisted #1" in table

    cancelled = await cli.json("activity", "cancel", community_id, activity_id, "--as", "ann")
    assert cancelled["state"] == "REGISTRATION_STATE_CANCELLED"
    [mine] = (await cli.json("activity", "list", community_id, "--mine", "--as", "bob"))[
        "activities"
    ]
    assert mine["registration"]["state"] == "REGISTRATION_STATE_HELD"

    code = (await cli.ok("activity", "code", community_id, activity_id, "--as", "host")).strip()
    checked = await cli.ok(
        "activity", "checkin", community_id, activity_id, "--code", code, "--as", "bob"
    )
    assert checked == "attended\n"
    await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 0.05)
    feedback = await cli.json(
        "activity", "feedback", community_id, activity_id, "--rating", "5", "--recommend", "9",
        "--comment", "More of these", "--as", "bob",
    )  # fmt: skip
    assert (feedback["rating"], feedback["would_recommend"]) == (5, 9)
    summary = await cli.json(
        "activity", "feedback", community_id, activity_id, "--summary", "--as", "host"
    )
    assert (summary["attended"], summary["average_rating"], summary["nps"]) == (1, 5.0, 100.0)
    assert summary["comments"] == ["More of these"]

    feed = await cli.ok("activity", "ics", community_id, "--as", "bob")
    [event] = icalendar.Calendar.from_ical(feed).walk("VEVENT")
    assert str(event["SUMMARY"]) == "Reading club"
    assert event.decoded("DTSTART") == start.replace(microsecond=0)


async def test_errors_exit_non_zero_naming_the_field(served: Served) -> None:
    events = served.running
    community_id = str(uuid.uuid4())
    await grant(events, community_id, "host", Role.MODERATOR)
    cli = Cli(served)
    refused = await cli(
        "activity", "create", community_id, "--title", "Too late", "--as", "host",
        "--start", (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "INVALID_ARGUMENT" in refused.stderr
    assert "start_time" in refused.stderr
    bad_lead = await cli(
        "activity", "create", community_id, "--title", "x", "--remind", "soon", "--as", "host",
        "--start", (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    )  # fmt: skip
    assert bad_lead.exit_code == 2
    assert "--remind" in bad_lead.stderr
    unknown = await cli("activity", "register", community_id, str(uuid.uuid4()), "--as", "host")
    assert unknown.exit_code == 1
    assert "NOT_FOUND" in unknown.stderr


async def test_a_challenge_goal_progress_leaderboard_and_an_invitation_through_the_cli(
    served: Served,
) -> None:
    events = served.running
    members = events.peers["members"]
    hall = await Hall.create(members, owner="host")
    await hall.join("ann")
    segment = await profiles_grpc.ProfilesServiceStub(members.channel).CreateSegment(
        profiles_pb.CreateSegmentRequest(
            community_id=hall.id, name="everyone", rule=json.dumps({"points_at_least": 0})
        ),
        metadata=hall.auth("host"),
    )
    await grant(events, hall.id, "host", Role.OWNER)
    await grant(events, hall.id, "ann", Role.MEMBER)
    cli = Cli(served)
    start = datetime.now(UTC) + timedelta(days=1)
    made = await cli.json(
        "activity", "create", hall.id, "--title", "21 days of English", "--kind", "challenge",
        "--start", start.isoformat(), "--end", (start + timedelta(days=30)).isoformat(),
        "--as", "host",
    )  # fmt: skip
    challenge = made["id"]
    goal = await cli.json(
        "activity", "goal", hall.id, challenge, "--kind", "check-in-days", "--target", "21",
        "--reward", "50", "--as", "host",
    )  # fmt: skip
    assert (goal["kind"], goal["target"], goal["reward_points"]) == (
        "CHALLENGE_GOAL_KIND_CHECK_IN_DAYS",
        21,
        50,
    )
    too_long = await cli(
        "activity", "goal", hall.id, challenge, "--kind", "check-in-days", "--target", "40",
        "--reward", "50", "--as", "host",
    )  # fmt: skip
    assert too_long.exit_code == 1
    assert "goal.target" in too_long.stderr
    await cli.ok("activity", "register", hall.id, challenge, "--as", "ann")
    progress = await cli.json("activity", "progress", hall.id, challenge, "--as", "ann")
    assert (progress["progress"], progress["target"], progress["completed"]) == (0, 21, False)
    board = await cli.json("activity", "leaderboard", hall.id, challenge, "--as", "ann")
    assert board["activity_id"] == challenge

    invited = await cli.json(
        "activity", "invite", hall.id, challenge, segment.segment.id, "--as", "host"
    )
    assert invited["member_count"] == "2"  # host and ann (int64 as JSON text)
    table = await cli.ok("activity", "list", hall.id, "--mine", "--as", "ann")
    assert "21 days of English" in table

    product_id = str(uuid.uuid4())
    workshop = await cli.json(
        "activity", "create", hall.id, "--title", "Paid workshop", "--kind", "online-lecture",
        "--start", start.isoformat(), "--capacity", "3", "--as", "host",
    )  # fmt: skip
    sold = await cli.json("activity", "ticket", hall.id, workshop["id"], product_id, "--as", "host")
    assert sold["ticket_product_id"] == product_id
    held = await cli.ok("activity", "register", hall.id, workshop["id"], "--as", "ann")
    assert held.startswith("held until")
