"""The notifier example on a real nats-server: a care signal published on Studyhall's members
stream reaches a local webhook endpoint signed, and the same event published again (as
`studyhall dlq replay` does: a fresh Nats-Msg-Id, the same ce-id) is not sent twice."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats
import pytest
from aiohttp import web
from faststream.nats import NatsBroker

from services.kit.events.connection import servers
from services.kit.events.streams import StreamLimits, ensure_stream, service_stream
from studyhall_notifier.delivery import Backoff, WebhookSender
from studyhall_notifier.notifier import Notifier, attach
from studyhall_notifier.sent import SentLog
from studyhall_notifier.signing import EVENT_ID, verify
from tests.clients.support import recorded

pytestmark = pytest.mark.service

SECRET = b"live-secret"


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    statuses = [500]

    async def handle(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=statuses.pop(0) if statuses else 204)

    app = web.Application()
    app.router.add_post("/hooks", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hooks", received
    finally:
        await runner.cleanup()


async def test_the_notifier_sends_a_live_care_signal_once(
    endpoint: tuple[str, list[tuple[dict[str, str], bytes]]], nats_url: str, tmp_path: Path
) -> None:
    url, received = endpoint
    (record,) = [r for r in recorded() if r["name"] == "streak-at-risk"]
    connection = await nats.connect(servers(nats_url))
    jetstream = connection.jetstream()
    # The services create their streams; the notifier reads three of them.
    for service in ("members", "events", "analytics"):
        await ensure_stream(jetstream, service_stream(service, StreamLimits()))

    broker = NatsBroker(servers(nats_url), logger=None)
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(session, url, SECRET, Backoff(attempts=3, first_delay=0.01))
        attach(
            broker,
            Notifier(sender, SentLog(tmp_path / "sent.db")),
            durable=f"notifier-{uuid.uuid4().hex[:8]}",
            max_wait=0.1,
        )
        await broker.start()
        try:
            for _ in range(2):  # the event, then its replay with a fresh Nats-Msg-Id
                headers = {**record["headers"], "Nats-Msg-Id": str(uuid.uuid4())}
                await jetstream.publish(
                    record["subject"], base64.b64decode(record["data"]), headers=headers
                )
            deadline = time.monotonic() + 10
            while len(received) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # time for the replay to be (not) sent
        finally:
            await broker.stop()
            await connection.close()

    assert len(received) == 2  # the 500 and its retry; the replay sent nothing
    for headers, body in received:
        assert verify(SECRET, headers, body, now=time.time())
        assert headers[EVENT_ID] == record["headers"]["ce-id"]
