"""`studyhall activity` against a running events service: plan, list, register and cancel
(the seat goes to the waitlist), check in by the venue's code, give feedback and read the
summary, export the calendar; errors exit non-zero naming the field. The CLI runs in a
thread of this process (typer's runner), which keeps each command to milliseconds."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from typer.testing import CliRunner, Result

from services.cli.main import app
from services.kit.access import Role
from tests.support import rpcs_events
from tests.support.access import grant
from tests.support.catalogue import serve
from tests.support.services import RunningService

pytestmark = pytest.mark.service


@dataclass
class Served:
    running: RunningService
    data_dir: Path


@pytest.fixture(scope="module")
async def served(
    redis_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    directory: Path = tmp_path_factory.mktemp("events-cli")
    async with serve(
        rpcs_events.PROCESS,
        database_url=f"sqlite+aiosqlite:///{directory / 'events.db'}",
        redis_url=redis_url,
        nats_url=nats_url,
        data_dir=directory,
    ) as running:
        yield Served(running, directory)


class Cli:
    def __init__(self, served: Served) -> None:
        # The CLI signs with the service's local key and finds it by address.
        self.env = {
            "STUDYHALL_DATA_DIR": str(served.data_dir),
            "STUDYHALL_EVENTS_ADDRESS": served.running.server.address,
            "COLUMNS": "200",
        }
        self.runner = CliRunner()

    async def __call__(self, *args: str) -> Result:
        def invoke() -> Result:
            return self.runner.invoke(app, list(args), env=self.env, catch_exceptions=False)

        return await asyncio.to_thread(invoke)

    async def ok(self, *args: str) -> str:
        result = await self(*args)
        assert result.exit_code == 0, result.output
        return result.stdout

    async def json(self, *args: str) -> Any:
        return json.loads(await self.ok(*args, "--json"))


async def test_an_activity_from_plan_to_feedback_through_the_cli(served: Served) -> None:
    events = served.running
    community_id = str(uuid.uuid4())
    await grant(events, community_id, "host", Role.MODERATOR)
    for member in ("ann", "bob"):
        await grant(events, community_id, member, Role.MEMBER)
    cli = Cli(served)
    start = datetime.now(UTC) + timedelta(seconds=2)
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
