"""Billing's webhook endpoint: the payment provider tells billing what became of payments
and refunds, over HTTP, signed (services/billing/payments/signatures.py).

`POST /webhooks/provider` takes one event: a bad signature or a timestamp outside the
tolerance is 400 naming the header, and nothing is applied; an event that was applied
before is 200 at once (deduplicated by the provider's event id, in the same transaction as
its effect); an event that cannot be applied now (the database is down) is 503, so the
provider delivers it again later. `GET /readyz` answers 200 while the database does,
`GET /healthz` while the process runs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.billing.payments.signatures import HEADER, BadSignature, verify

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class ProviderEvent:
    id: str
    type: str
    object: dict[str, Any]


class PoisonEvent(ValueError):
    """A signed event billing cannot make sense of: acknowledged (a redelivery would say the
    same), logged with the reason."""


Apply = Callable[[ProviderEvent], Awaitable[str]]


class WebhookServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        secret: str,
        tolerance_seconds: float,
        apply: Apply,
        ready: Callable[[], Awaitable[bool]],
    ) -> None:
        self.host = host
        self.port = port
        self.secret = secret
        self.tolerance = tolerance_seconds
        self.apply = apply
        self.ready = ready

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/webhooks/provider", self.receive)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        return app

    async def run(self) -> None:
        """Serve until cancelled (a background worker of the billing process)."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
            log.info("webhook endpoint listening", extra={"port": self.port})
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    async def receive(self, request: web.Request) -> web.Response:
        payload = await request.read()
        try:
            verify(
                payload, request.headers.get(HEADER, ""), self.secret, time.time(), self.tolerance
            )
        except BadSignature as error:
            return _answer(400, str(error))
        try:
            event = parse(payload)
        except PoisonEvent as error:
            log.warning("unusable provider event acknowledged: %s", error)
            return _answer(200, f"ignored: {error}")
        try:
            outcome = await self.apply(event)
        except PoisonEvent as error:
            log.warning("provider event %s acknowledged unapplied: %s", event.id, error)
            return _answer(200, f"ignored: {error}")
        except Exception:
            log.exception("provider event %s not applied; the provider will redeliver", event.id)
            return _answer(503, "not applied now; deliver it again later")
        return _answer(200, outcome)

    async def healthz(self, request: web.Request) -> web.Response:
        return _answer(200, "alive")

    async def readyz(self, request: web.Request) -> web.Response:
        return _answer(200, "ready") if await self.ready() else _answer(503, "database down")


def parse(payload: bytes) -> ProviderEvent:
    try:
        body = json.loads(payload)
    except ValueError:
        raise PoisonEvent("the body is not JSON") from None
    if not isinstance(body, dict):
        raise PoisonEvent("the body is not a JSON object")
    event_id, kind = body.get("id"), body.get("type")
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not event_id or len(event_id) > 100:
        raise PoisonEvent("id must be a string of 1-100 characters")
    if not isinstance(kind, str) or not isinstance(obj, dict):
        raise PoisonEvent("type must be a string and data.object an object")
    return ProviderEvent(event_id, kind, obj)


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"status": status, "message": message}, status=status)
