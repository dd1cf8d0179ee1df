"""A stand-in for Stripe's API, as its own process (`python -m tests.support.stripe_api`,
port in STRIPE_API_PORT): `POST /v1/payment_intents` and `POST /v1/refunds`, form-encoded as
the stripe package sends them, answering with objects built from the package's own models
(PaymentIntent, Refund) and its error bodies. Idempotency keys are honoured as Stripe does:
the same key answers the same object. `GET /_requests` lists what it was sent;
`POST /_fail?count=N` makes the next N calls answer 500, as an outage would."""

from __future__ import annotations

import os
import uuid
from typing import Any

import stripe
from aiohttp import web

DECLINES = {"pm_card_chargeDeclined": "card_declined"}
AUTHENTICATES = {"pm_card_authenticationRequired"}
SUCCEEDS = {"pm_card_visa", "pm_card_mastercard"}


class StripeStandIn:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.failing = 0

    async def payment_intents(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._payment_intent)

    async def refunds(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._refund)

    async def listed(self, request: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def fail(self, request: web.Request) -> web.Response:
        self.failing = int(request.query.get("count", "1"))
        return web.json_response({"failing": self.failing})

    async def _answer(self, request: web.Request, make: Any) -> web.Response:
        form = dict(await request.post())
        key = request.headers.get("Idempotency-Key", "")
        self.requests.append(
            {
                "path": request.path,
                "form": {name: str(value) for name, value in form.items()},
                "idempotency_key": key,
                "authorization": request.headers.get("Authorization", ""),
            }
        )
        if self.failing > 0:
            self.failing -= 1
            body = {"error": {"type": "api_error", "message": "An unexpected error occurred."}}
            return web.json_response(body, status=500)
        if key and key in self.answers:
            status, body = self.answers[key]
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        status, body = make(form)
        if key:
            self.answers[key] = (status, body)
        return web.json_response(body, status=status)

    def _payment_intent(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        method = str(form.get("payment_method", ""))
        metadata = {
            name[len("metadata[") : -1]: str(value)
            for name, value in form.items()
            if name.startswith("metadata[")
        }
        fields: dict[str, Any] = {
            "id": f"pi_{uuid.uuid4().hex[:24]}",
            "object": "payment_intent",
            "amount": int(form.get("amount", 0)),
            "currency": str(form.get("currency", "")),
            "payment_method": method,
            "metadata": metadata,
            "status": "processing",
        }
        if method in DECLINES:
            intent = _model(stripe.PaymentIntent, {**fields, "status": "requires_payment_method"})
            error = {
                "type": "card_error",
                "code": DECLINES[method],
                "message": "Your card was declined.",
                "payment_intent": intent,
            }
            return 402, {"error": error}
        if method in AUTHENTICATES:
            action = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks/3ds"}}
            return 200, _model(
                stripe.PaymentIntent, {**fields, "status": "requires_action", "next_action": action}
            )
        if method not in SUCCEEDS:
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "payment_method",
                "message": f"No such PaymentMethod: '{method}'",
            }
            return 400, {"error": error}
        return 200, _model(stripe.PaymentIntent, fields)

    def _refund(self, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, _model(
            stripe.Refund,
            {
                "id": f"re_{uuid.uuid4().hex[:24]}",
                "object": "refund",
                "amount": int(form.get("amount", 0)),
                "payment_intent": str(form.get("payment_intent", "")),
                "status": "pending",
            },
        )


def _model(kind: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """The JSON of an object of the package's model."""
    made: dict[str, Any] = kind.construct_from(fields, "sk_test_stand_in").to_dict()
    return made


def main() -> None:
    stand_in = StripeStandIn()
    app = web.Application()
    app.router.add_post("/v1/payment_intents", stand_in.payment_intents)
    app.router.add_post("/v1/refunds", stand_in.refunds)
    app.router.add_get("/_requests", stand_in.listed)
    app.router.add_post("/_fail", stand_in.fail)
    app.router.add_get("/healthz", stand_in.healthz)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["STRIPE_API_PORT"]), print=None)


if __name__ == "__main__":
    main()
