"""The payment provider port on Stripe, through the official `stripe` package (StripeClient,
async over aiohttp). Chosen with STUDYHALL_BILLING_PROVIDER=stripe; the provider URL is the
client's API base, so tests point it at a local server answering with Stripe's objects.

Not verified against live Stripe (no network here): the requests follow the package's typed
parameters, and the answers are read through its models.

Stripe answers a declined confirmation with a card error that still names the
PaymentIntent it made: that is a payment like any other here, whose outcome arrives as the
`payment_intent.payment_failed` webhook, as a decline does with the sandbox."""

from __future__ import annotations

from typing import Any

import stripe

from services.billing.payments.provider import Payment, ProviderRefund, ProviderRefused
from services.kit.errors import Unavailable

# Errors the caller may retry with the same idempotency key: the provider was not reached,
# failed, or asked to slow down.
_TRANSIENT = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)


class StripeProvider:
    def __init__(self, api_base: str, api_key: str, *, timeout: float = 10.0) -> None:
        self._http = stripe.AIOHTTPClient(timeout=timeout)
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self._http,
            # Billing's callers retry with the same key; a quick UNAVAILABLE tells them to.
            max_network_retries=0,
        )

    async def create_payment(
        self,
        *,
        idempotency_key: str,
        amount_minor: int,
        currency: str,
        payment_method: str,
        metadata: dict[str, str],
    ) -> Payment:
        try:
            intent = await self.client.v1.payment_intents.create_async(
                {
                    "amount": amount_minor,
                    "currency": currency.lower(),
                    "payment_method": payment_method,
                    "confirm": True,
                    "metadata": metadata,
                },
                {"idempotency_key": idempotency_key},
            )
        except stripe.CardError as error:
            declined = _declined_intent(error)
            if declined is None:
                raise ProviderRefused(error.user_message or str(error)) from None
            return declined
        except _TRANSIENT as error:
            raise _unavailable(error) from None
        except stripe.StripeError as error:
            raise ProviderRefused(error.user_message or str(error)) from None
        action: Any = intent.to_dict().get("next_action") or {}
        url = str((action.get("redirect_to_url") or {}).get("url") or "")
        return Payment(id=str(intent.id), status=str(intent.status), next_action_url=url)

    async def create_refund(
        self, *, idempotency_key: str, payment_id: str, amount_minor: int, metadata: dict[str, str]
    ) -> ProviderRefund:
        try:
            refund = await self.client.v1.refunds.create_async(
                {"payment_intent": payment_id, "amount": amount_minor, "metadata": metadata},
                {"idempotency_key": idempotency_key},
            )
        except _TRANSIENT as error:
            raise _unavailable(error) from None
        except stripe.StripeError as error:
            raise ProviderRefused(error.user_message or str(error)) from None
        return ProviderRefund(id=str(refund.id), status=str(refund.status))

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]


def _declined_intent(error: stripe.CardError) -> Payment | None:
    """The PaymentIntent a decline made, from the error body Stripe sends with it."""
    body: Any = error.json_body or {}
    intent = (body.get("error") or {}).get("payment_intent") or {}
    if not intent.get("id"):
        return None
    return Payment(
        id=str(intent["id"]), status=str(intent.get("status") or "requires_payment_method")
    )


def _unavailable(error: stripe.StripeError) -> Unavailable:
    return Unavailable(
        f"the payment provider did not take the request ({type(error).__name__}); retry with "
        "the same request_id: it is never charged twice"
    )
