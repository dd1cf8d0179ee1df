"""The example notifier: care signals become signed webhooks, retried after a 500, and a
redelivered event is not sent twice. A real aiohttp server on a free port receives them; the
events arrive through a real nats-server's JetStream."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from aiohttp import web
from faststream.nats import NatsBroker

from services.kit.events.connection import servers
from services.kit.events.streams import StreamLimits, ensure_stream, service_stream, stream_name
from studyhall_notifier.delivery import Backoff, WebhookSender
from studyhall_notifier.notifier import Notifier, attach
from studyhall_notifier.sent import SentLog
from studyhall_notifier.signing import EVENT_ID, EVENT_TYPE, SIGNATURE, TIMESTAMP, verify
from tests.clients.support import recorded

pytestmark = pytest.mark.service

SECRET = b"shared-secret-for-tests"


@dataclass
class Endpoint:
    """A webhook receiver that answers with the statuses it is told, then 200."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    receiver = Endpoint()
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def _notifier(endpoint: Endpoint, session: aiohttp.ClientSession, tmp_path: Path) -> Notifier:
    sender = WebhookSender(
        session, endpoint.url, SECRET, Backoff(attempts=3, first_delay=0.01, max_delay=0.05)
    )
    return Notifier(sender, SentLog(tmp_path / "sent.db"))


def _record(name: str) -> dict[str, Any]:
    (record,) = [r for r in recorded() if r["name"] == name]
    return record


@asynccontextmanager
async def _running(notifier: Notifier, nats_url: str) -> AsyncIterator[Any]:
    """The notifier on a real JetStream (the three streams it reads); yields a publisher."""
    connection = await nats.connect(servers(nats_url))
    jetstream = connection.jetstream()
    for service in ("members", "events", "analytics"):
        stream = service_stream(service, StreamLimits())
        await ensure_stream(jetstream, stream)
        # The recorded events carry fixed ids: an earlier test's copies must not come back.
        await jetstream.purge_stream(stream_name(service))
    broker = NatsBroker(servers(nats_url), logger=None)
    attach(broker, notifier, durable=f"notifier-{uuid.uuid4().hex[:8]}", max_wait=0.1)
    await broker.start()

    async def publish(name: str) -> None:
        record = _record(name)
        # A fresh Nats-Msg-Id: a replay is a new message to JetStream, the same ce-id.
        headers = {**record["headers"], "Nats-Msg-Id": str(uuid.uuid4())}
        await jetstream.publish(
            record["subject"], base64.b64decode(record["data"]), headers=headers
        )

    try:
        yield publish
    finally:
        await broker.stop()
        await connection.close()


async def _received(endpoint: Endpoint, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(endpoint.received) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # time for anything more to (not) arrive


async def test_a_care_signal_becomes_a_signed_webhook_retried_after_a_500_and_sent_once(
    endpoint: Endpoint, session: aiohttp.ClientSession, tmp_path: Path, nats_url: str
) -> None:
    notifier = _notifier(endpoint, session, tmp_path)
    endpoint.statuses = [500]
    async with _running(notifier, nats_url) as publish:
        await publish("member-inactive")
        # The same event again, as a replay or a redelivery after a lost ack brings it.
        await publish("member-inactive")
        await _received(endpoint, 2)

    inactive = _record("member-inactive")
    assert len(endpoint.received) == 2  # the 500, then the retry; the redelivery sent nothing
    for headers, body in endpoint.received:
        assert verify(SECRET, headers, body, now=time.time())
        assert headers[EVENT_ID] == inactive["headers"]["ce-id"]
        assert headers[EVENT_TYPE] == "studyhall.members.v1.MemberInactive"
        assert headers["Content-Type"] == "application/json"
    headers, body = endpoint.received[-1]
    assert json.loads(body) == {
        "id": inactive["headers"]["ce-id"],
        "type": "studyhall.members.v1.MemberInactive",
        "time": "2026-12-01T09:30:00Z",
        "community_id": inactive["headers"]["ce-communityid"],
        "data": {
            "community_id": inactive["headers"]["ce-communityid"],
            "user_id": "bob",
            "local_date": "2026-12-01",
            "days_inactive": 14,
        },
    }
    # A tampered body or another secret does not verify; neither does an old timestamp.
    assert not verify(SECRET, headers, body + b" ", now=time.time())
    assert not verify(b"other", headers, body, now=time.time())
    assert not verify(SECRET, headers, body, now=int(headers[TIMESTAMP]) + 3600)
    assert headers[SIGNATURE].startswith("v1=")


async def test_every_kind_of_care_signal_is_delivered(
    endpoint: Endpoint, session: aiohttp.ClientSession, tmp_path: Path, nats_url: str
) -> None:
    notifier = _notifier(endpoint, session, tmp_path)
    names = [
        "member-inactive",
        "streak-at-risk",
        "greeting",
        "activity-reminder-due",
        "churn-risk-changed-capitalized-headers",
        "member-joined",  # not a care signal: outside the notifier's filters
    ]
    async with _running(notifier, nats_url) as publish:
        for name in names:
            await publish(name)
        await _received(endpoint, 5)
    assert sorted(headers[EVENT_TYPE] for headers, _ in endpoint.received) == [
        "studyhall.analytics.v1.ChurnRiskChanged",
        "studyhall.events.v1.ActivityReminderDue",
        "studyhall.members.v1.Greeting",
        "studyhall.members.v1.MemberInactive",
        "studyhall.members.v1.StreakAtRisk",
    ]
    [reminder] = [
        json.loads(body)["data"]
        for headers, body in endpoint.received
        if headers[EVENT_TYPE] == "studyhall.events.v1.ActivityReminderDue"
    ]
    assert (reminder["lead_time"], reminder["user_id"]) == ("3600s", "bob")


async def test_an_endpoint_that_keeps_failing_leaves_the_event_to_be_delivered_again(
    endpoint: Endpoint, session: aiohttp.ClientSession, tmp_path: Path, nats_url: str
) -> None:
    notifier = _notifier(endpoint, session, tmp_path)
    endpoint.statuses = [503, 503, 503]
    async with _running(notifier, nats_url) as publish:
        await publish("streak-at-risk")
        # Every attempt of the backoff fails; JetStream delivers it again and it goes through.
        await _received(endpoint, 4)
        assert [headers[EVENT_ID] for headers, _ in endpoint.received] == [
            _record("streak-at-risk")["headers"]["ce-id"]
        ] * 4
        # A refusal (400) is not retried by the sender, but the event comes back once more.
        endpoint.statuses = [400]
        await publish("greeting")
        await _received(endpoint, 6)
    assert len(endpoint.received) == 6
    assert _record("streak-at-risk")["headers"]["ce-id"] in notifier.sent
