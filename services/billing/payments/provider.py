"""The payment provider port, and its adapter for the sandbox provider's HTTP API (a
minimal subset of Stripe's PaymentIntents and Refunds, form-encoded, bearer key).

Billing asks the provider to collect or pay back money and learns the outcome from the
provider's webhooks, never from the answer alone: the answer says only that the provider
has the request. Every call carries an idempotency key (the charge or refund id), so a
retried call never collects twice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from services.kit.errors import Unavailable


@dataclass(frozen=True)
class Payment:
    """What the provider said about a payment it was asked to collect."""

    id: str
    status: str  # "processing", "requires_action", "succeeded" or "canceled"
    next_action_url: str = ""


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    status: str  # "pending", "succeeded" or "failed"


class ProviderRefused(Exception):
    """The provider refused the request itself (not a decline: a decline arrives as an
    event); the message is the provider's."""


class PaymentProvider(Protocol):
    async def create_payment(
        self,
        *,
        idempotency_key: str,
        amount_minor: int,
        currency: str,
        payment_method: str,
        metadata: dict[str, str],
    ) -> Payment: ...

    async def create_refund(
        self, *, idempotency_key: str, payment_id: str, amount_minor: int, metadata: dict[str, str]
    ) -> ProviderRefund: ...

    async def close(self) -> None: ...


class SandboxProvider:
    """The HTTP adapter: `POST /v1/payment_intents` and `POST /v1/refunds`."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def create_payment(
        self,
        *,
        idempotency_key: str,
        amount_minor: int,
        currency: str,
        payment_method: str,
        metadata: dict[str, str],
    ) -> Payment:
        form = {
            "amount": str(amount_minor),
            "currency": currency.lower(),
            "payment_method": payment_method,
            "confirm": "true",
            **{f"metadata[{key}]": value for key, value in metadata.items()},
        }
        body = await self._post("/v1/payment_intents", form, idempotency_key)
        action = body.get("next_action") or {}
        url = str((action.get("redirect_to_url") or {}).get("url", ""))
        return Payment(id=str(body["id"]), status=str(body["status"]), next_action_url=url)

    async def create_refund(
        self, *, idempotency_key: str, payment_id: str, amount_minor: int, metadata: dict[str, str]
    ) -> ProviderRefund:
        form = {
            "payment_intent": payment_id,
            "amount": str(amount_minor),
            **{f"metadata[{key}]": value for key, value in metadata.items()},
        }
        body = await self._post("/v1/refunds", form, idempotency_key)
        return ProviderRefund(id=str(body["id"]), status=str(body["status"]))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, path: str, form: dict[str, str], idempotency_key: str) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Idempotency-Key": idempotency_key,
        }
        try:
            async with self._session.post(
                self.base_url + path, data=form, headers=headers
            ) as response:
                body = await response.json(content_type=None)
                if response.status >= 500:
                    raise _unavailable(f"answered {response.status}")
                if response.status >= 400:
                    message = (body.get("error") or {}).get("message", str(body))
                    raise ProviderRefused(str(message))
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise _unavailable(type(error).__name__) from error


def _unavailable(what: str) -> Unavailable:
    return Unavailable(
        f"the payment provider did not take the request ({what}); retry with the same "
        "request_id: it is never charged twice"
    )
