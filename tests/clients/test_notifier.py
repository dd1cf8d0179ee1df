"""The example notifier: care signals become signed webhooks, retried after a 500, and a
redelivered event is not sent twice. A real aiohttp server on a free port receives them; the
events arrive through faststream's TestNatsBroker."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from faststream.nats import NatsBroker, TestNatsBroker

from studyhall_consumer.subscriber import BatchConsumer
from studyhall_notifier.delivery import Backoff, WebhookSender
from studyhall_notifier.notifier import Notifier, attach
from studyhall_notifier.sent import SentLog
from studyhall_notifier.signing import EVENT_ID, EVENT_TYPE, SIGNATURE, TIMESTAMP, verify
from tests.clients.support import recorded, recorded_msg

pytestmark = pytest.mark.unit

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


async def _publish(broker: Any, name: str) -> None:
    record = _record(name)
    await broker.publish(
        base64.b64decode(record["data"]), record["subject"], headers=dict(record["headers"])
    )


async def test_a_care_signal_becomes_a_signed_webhook_retried_after_a_500_and_sent_once(
    endpoint: Endpoint, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    notifier = _notifier(endpoint, session, tmp_path)
    broker = NatsBroker()
    attach(broker, notifier)
    endpoint.statuses = [500]
    async with TestNatsBroker(broker) as test_broker:
        await _publish(test_broker, "member-inactive")
        # The same event again, as JetStream redelivers it after a lost ack.
        await _publish(test_broker, "member-inactive")

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
    endpoint: Endpoint, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    notifier = _notifier(endpoint, session, tmp_path)
    broker = NatsBroker()
    attach(broker, notifier)
    names = [
        "member-inactive",
        "streak-at-risk",
        "greeting",
        "activity-reminder-due",
        "churn-risk-changed-capitalized-headers",
        "member-joined",  # not a care signal: outside the notifier's filters
    ]
    async with TestNatsBroker(broker) as test_broker:
        for name in names:
            await _publish(test_broker, name)
    assert [headers[EVENT_TYPE] for headers, _ in endpoint.received] == [
        "studyhall.members.v1.MemberInactive",
        "studyhall.members.v1.StreakAtRisk",
        "studyhall.members.v1.Greeting",
        "studyhall.events.v1.ActivityReminderDue",
        "studyhall.analytics.v1.ChurnRiskChanged",
    ]
    reminder = json.loads(endpoint.received[3][1])["data"]
    assert (reminder["lead_time"], reminder["user_id"]) == ("3600s", "bob")


async def test_an_endpoint_that_keeps_failing_leaves_the_event_to_be_delivered_again(
    endpoint: Endpoint, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    notifier = _notifier(endpoint, session, tmp_path)
    consumer = BatchConsumer(notifier.handlers(), "notifier")
    endpoint.statuses = [503, 503, 503]
    msg = recorded_msg(_record("streak-at-risk"))
    await consumer([msg])  # type: ignore[list-item]
    assert len(endpoint.received) == 3  # every attempt of the backoff
    assert msg.settled == [("nak", 0.2)]  # JetStream delivers it again later
    assert _record("streak-at-risk")["headers"]["ce-id"] not in notifier.sent

    # The redelivery goes through, once; a refusal (400) is not retried by the sender.
    redelivered = recorded_msg(_record("streak-at-risk"))
    redelivered.delivered = 2
    await consumer([redelivered])  # type: ignore[list-item]
    assert redelivered.settled == [("ack", None)]
    assert len(endpoint.received) == 4
    endpoint.statuses = [400]
    refused = recorded_msg(_record("greeting"))
    await consumer([refused])  # type: ignore[list-item]
    assert len(endpoint.received) == 5
    assert refused.settled == [("nak", 0.2)]
