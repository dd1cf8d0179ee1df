"""The sandbox payment provider as a process: its webhooks are signed as Stripe signs them
and delivered again, with growing pauses, until the receiver takes them; it refuses a
refund above what is left and a request without its key."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from services.billing.payments.signatures import verify
from tests.support.billing import API_KEY, SECRET, sandbox
from tests.support.services import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.service


class FlakyReceiver:
    """A webhook endpoint that answers 503 to the first deliveries, then 200."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[float, bytes, str]] = []

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((time.monotonic(), body, request.headers["Stripe-Signature"]))
        if len(self.received) <= self.failures:
            return web.Response(status=503)
        return web.Response(status=200)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[FlakyReceiver, str]]:
    flaky = FlakyReceiver(failures=2)
    app = web.Application()
    app.router.add_post("/webhooks/provider", flaky.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield flaky, f"http://127.0.0.1:{port}/webhooks/provider"
    finally:
        await runner.cleanup()


async def test_webhooks_are_signed_and_redelivered_with_backoff_until_taken(
    receiver: tuple[FlakyReceiver, str], tmp_path: Path
) -> None:
    flaky, url = receiver
    with sandbox(tmp_path, url, retry_base_seconds="0.1") as provider:
        async with aiohttp.ClientSession() as client:
            auth = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "charge-1"}
            form = {"amount": "700", "currency": "eur", "payment_method": "pm_card_visa"}
            async with client.post(provider.url + "/v1/payment_intents", data=form) as refused:
                assert refused.status == 401
            async with client.post(
                provider.url + "/v1/payment_intents", data=form, headers=auth
            ) as created:
                payment = await created.json()
            assert payment["status"] == "processing"

            async def delivered() -> bool:
                return len(flaky.received) >= 3

            await eventually(delivered, "the third delivery")
            events = await provider.events()
            assert [(e["type"], e["attempts"], e["delivered"]) for e in events] == [
                ("payment_intent.succeeded", 3, True)
            ]
            times = [at for at, _body, _signature in flaky.received]
            assert times[2] - times[1] > times[1] - times[0] > 0.05  # pauses grow
            for _at, body, signature in flaky.received:
                verify(body, signature, SECRET, time.time(), tolerance=60)

            refund = {"payment_intent": payment["id"], "amount": "701"}
            async with client.post(
                provider.url + "/v1/refunds", data=refund, headers=auth | {"Idempotency-Key": "r"}
            ) as too_much:
                assert too_much.status == 400
                assert (await too_much.json())["error"]["code"] == "amount_too_large"
