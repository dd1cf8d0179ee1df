"""The sandbox payment provider: a real process with its own SQLite file and an HTTP API
shaped like a minimal subset of Stripe's (PaymentIntents, Refunds), for local runs and
tests. `python -m services.billing.sandbox`.

It behaves as a provider does, not as a stub: a payment is accepted as `processing` and
settled a moment later (succeeded, or declined for the decline test cards), or waits in
`requires_action` until the payer authenticates (`POST /v1/payment_intents/<id>/authenticate`);
refunds are `pending`, then settle. Each outcome is a webhook event delivered to billing
over HTTP, signed as Stripe signs (`Stripe-Signature: t=...,v1=...`), delivered again with
growing pauses until billing answers 2xx, in batches whose order is shuffled: billing must
not rely on order.

Test payment methods, as Stripe names them: `pm_card_visa`, `pm_card_mastercard`,
`tok_visa` succeed; `pm_card_chargeDeclined` (card_declined),
`pm_card_chargeDeclinedInsufficientFunds` (insufficient_funds) and
`pm_card_chargeDeclinedExpiredCard` (expired_card) are declined;
`pm_card_authenticationRequired` and `pm_card_threeDSecure2Required` need authentication.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.billing.payments.signatures import HEADER, sign
from services.billing.sandbox.store import SandboxStore, new_id

log = logging.getLogger("sandbox")

SUCCEEDS = {"pm_card_visa", "pm_card_mastercard", "tok_visa", "tok_mastercard"}
DECLINES = {
    "pm_card_chargeDeclined": "card_declined",
    "tok_chargeDeclined": "card_declined",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
}
AUTHENTICATES = {"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"}
CURRENCY = re.compile(r"^[a-z]{3}$")


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STUDYHALL_SANDBOX_", frozen=True)

    host: str = Field("127.0.0.1", description="Address the sandbox provider binds.")
    port: int = Field(12111, ge=1, le=65535, description="Port of the sandbox provider's API.")
    data_dir: Path = Field(Path(".studyhall"), description="Where sandbox.db is kept.")
    api_key: str = Field("sk_test_studyhall", min_length=1, description="Accepted secret key.")
    webhook_url: str = Field(
        "http://127.0.0.1:8054/webhooks/provider", description="Billing's webhook endpoint."
    )
    webhook_secret: str = Field("whsec_studyhall_local", min_length=8)
    settle_seconds: float = Field(0.05, ge=0, description="Processing time of a payment.")
    retry_base_seconds: float = Field(0.2, gt=0, description="First pause before a redelivery.")
    retry_max_seconds: float = Field(30, gt=0, description="Longest pause between deliveries.")
    tick_seconds: float = Field(0.02, gt=0, description="How often due work is looked for.")


class Sandbox:
    def __init__(self, settings: SandboxSettings, store: SandboxStore) -> None:
        self.settings = settings
        self.store = store
        self.public_url = f"http://{settings.host}:{settings.port}"
        self._client: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.authenticate])
        app.router.add_post("/v1/payment_intents", self.create_payment)
        app.router.add_get("/v1/payment_intents/{id}", self.get_payment)
        app.router.add_post("/v1/payment_intents/{id}/authenticate", self.authenticated)
        app.router.add_post("/v1/refunds", self.create_refund)
        app.router.add_get("/v1/events", self.list_events)
        app.router.add_get("/healthz", self.healthz)
        return app

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        protected = request.path.startswith("/v1/") and "/authenticate" not in request.path
        if protected and request.headers.get("Authorization") != f"Bearer {self.settings.api_key}":
            return _error(401, "authentication_required", "Invalid API Key provided")
        response: web.StreamResponse = await handler(request)
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def create_payment(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return _error(400, "parameter_missing", "Idempotency-Key header is required")
        found = self.store.payment_by_key(key)
        if found is not None:
            return web.json_response(_payment(found, self.public_url))
        form = await request.post()
        amount = str(form.get("amount", ""))
        currency = str(form.get("currency", ""))
        method = str(form.get("payment_method", ""))
        if not amount.isdigit() or int(amount) <= 0:
            return _error(400, "parameter_invalid_integer", "amount must be a positive integer")
        if not CURRENCY.fullmatch(currency):
            return _error(400, "parameter_invalid", "currency must be a three-letter ISO code")
        if method not in SUCCEEDS | set(DECLINES) | AUTHENTICATES:
            return _error(400, "resource_missing", f"No such PaymentMethod: '{method}'")
        metadata = {
            str(name)[9:-1]: str(value)
            for name, value in form.items()
            if str(name).startswith("metadata[") and str(name).endswith("]")
        }
        now = time.time()
        needs_action = method in AUTHENTICATES
        values = {
            "id": new_id("pi"),
            "idempotency_key": key,
            "amount": int(amount),
            "currency": currency,
            "payment_method": method,
            "status": "requires_action" if needs_action else "processing",
            "metadata": json.dumps(metadata),
            "decline_code": DECLINES.get(method, ""),
            "created": now,
            "settle_at": None if needs_action else now + self.settings.settle_seconds,
        }
        self.store.add_payment(values)
        row = self.store.payment(str(values["id"]))
        assert row is not None
        body = _payment(row, self.public_url)
        if needs_action:
            self.store.add_event("payment_intent.requires_action", body)
        return web.json_response(body)

    async def get_payment(self, request: web.Request) -> web.Response:
        row = self.store.payment(request.match_info["id"])
        if row is None:
            return _error(404, "resource_missing", "No such payment_intent")
        return web.json_response(_payment(row, self.public_url))

    async def authenticated(self, request: web.Request) -> web.Response:
        """The payer completed (or, with `result=fail`, failed) authentication."""
        row = self.store.payment(request.match_info["id"])
        if row is None:
            return _error(404, "resource_missing", "No such payment_intent")
        if row["status"] != "requires_action":
            return _error(400, "payment_intent_unexpected_state", f"status is {row['status']}")
        form = await request.post()
        decline = "authentication_required" if form.get("result") == "fail" else ""
        self.store.set_payment(
            row["id"], status="processing", decline_code=decline, settle_at=time.time()
        )
        updated = self.store.payment(row["id"])
        assert updated is not None
        return web.json_response(_payment(updated, self.public_url))

    async def create_refund(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return _error(400, "parameter_missing", "Idempotency-Key header is required")
        found = self.store.refund_by_key(key)
        if found is not None:
            return web.json_response(_refund(found))
        form = await request.post()
        payment = self.store.payment(str(form.get("payment_intent", "")))
        if payment is None:
            return _error(400, "resource_missing", "No such payment_intent")
        if payment["status"] != "succeeded":
            return _error(400, "charge_not_refundable", "the payment has not succeeded")
        left = payment["amount"] - self.store.refunded(payment["id"])
        amount = str(form.get("amount", "")) or str(left)
        if not amount.isdigit() or int(amount) <= 0:
            return _error(400, "parameter_invalid_integer", "amount must be a positive integer")
        if int(amount) > left:
            return _error(
                400,
                "amount_too_large",
                f"Refund amount ({amount}) is greater than unrefunded {left}",
            )
        metadata = {
            str(name)[9:-1]: str(value)
            for name, value in form.items()
            if str(name).startswith("metadata[") and str(name).endswith("]")
        }
        now = time.time()
        values = {
            "id": new_id("re"),
            "idempotency_key": key,
            "payment_intent": payment["id"],
            "amount": int(amount),
            "status": "pending",
            "metadata": json.dumps(metadata),
            "created": now,
            "settle_at": now + self.settings.settle_seconds,
        }
        self.store.add_refund(values)
        row = self.store.refund_by_key(key)
        assert row is not None
        return web.json_response(_refund(row))

    async def list_events(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": row["id"],
                        "type": row["type"],
                        "attempts": row["attempts"],
                        "delivered": row["delivered_at"] is not None,
                    }
                    for row in self.store.events()
                ],
            }
        )

    # ---- the provider's own clock: settling and delivering -------------------------------

    async def run_background(self) -> None:
        while True:
            now = time.time()
            self.settle(now)
            await self.deliver(now)
            await asyncio.sleep(self.settings.tick_seconds)

    def settle(self, now: float) -> None:
        for row in self.store.due_payments(now):
            if row["decline_code"]:
                self.store.set_payment(row["id"], status="requires_payment_method")
                updated = self.store.payment(row["id"])
                assert updated is not None
                body = _payment(updated, self.public_url)
                body["last_payment_error"] = {"code": row["decline_code"], "type": "card_error"}
                self.store.add_event("payment_intent.payment_failed", body)
            else:
                self.store.set_payment(row["id"], status="succeeded")
                updated = self.store.payment(row["id"])
                assert updated is not None
                self.store.add_event("payment_intent.succeeded", _payment(updated, self.public_url))
        for row in self.store.due_refunds(now):
            self.store.settle_refund(row["id"], "succeeded")
            settled = self.store.refund_by_key(row["idempotency_key"])
            assert settled is not None
            self.store.add_event("refund.updated", _refund(settled))

    async def deliver(self, now: float) -> None:
        due = self.store.due_events(now, 50)
        if not due:
            return
        # A provider gives no order guarantee; neither does this one.
        random.shuffle(due)
        outcomes = await asyncio.gather(*(self._post(row) for row in due))
        for row, ok in zip(due, outcomes, strict=True):
            if ok:
                self.store.delivered(row["id"], time.time())
            else:
                pause = min(
                    self.settings.retry_base_seconds * 2 ** row["attempts"],
                    self.settings.retry_max_seconds,
                )
                self.store.failed(row["id"], time.time() + pause * random.uniform(0.8, 1.2))

    async def _post(self, row: Any) -> bool:
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        payload = row["payload"].encode()
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(payload, self.settings.webhook_secret, int(time.time())),
        }
        try:
            async with self._client.post(
                self.settings.webhook_url, data=payload, headers=headers
            ) as response:
                return 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def _payment(row: Any, public_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row["id"],
        "object": "payment_intent",
        "amount": row["amount"],
        "currency": row["currency"],
        "payment_method": row["payment_method"],
        "status": row["status"],
        "metadata": json.loads(row["metadata"]),
        "created": int(row["created"]),
        "next_action": None,
    }
    if row["status"] == "requires_action":
        body["next_action"] = {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": f"{public_url}/v1/payment_intents/{row['id']}/authenticate"},
        }
    return body


def _refund(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "refund",
        "amount": row["amount"],
        "payment_intent": row["payment_intent"],
        "status": row["status"],
        "metadata": json.loads(row["metadata"]),
        "created": int(row["created"]),
    }


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"error": {"type": "invalid_request_error", "code": code, "message": message}},
        status=status,
    )


async def serve(settings: SandboxSettings) -> None:
    store = SandboxStore(settings.data_dir / "sandbox.db")
    sandbox = Sandbox(settings, store)
    runner = web.AppRunner(sandbox.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    log.info("sandbox provider on %s", sandbox.public_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = asyncio.create_task(sandbox.run_background())
    try:
        await stop.wait()
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await sandbox.close()
        await runner.cleanup()
        store.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        settings = SandboxSettings()
    except ValidationError as error:
        first = error.errors()[0]
        name = "STUDYHALL_SANDBOX_" + str(first["loc"][0]).upper()
        print(f"sandbox: invalid setting {name}: {first['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        asyncio.run(serve(settings))
    except OSError as error:
        print(
            f"sandbox: cannot listen on {settings.host}:{settings.port} ({error}); "
            "set STUDYHALL_SANDBOX_PORT to a free port",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
