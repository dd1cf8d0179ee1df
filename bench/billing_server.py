"""The billing API process as `python -m services.billing serve` runs it, but on a payment
provider adapter that answers at once: what bench.billing times ends where the provider call
begins. `python -m bench.billing_server`."""

from __future__ import annotations

import uuid

from services.billing.app import build_spec
from services.billing.payments.provider import Payment, ProviderRefund
from services.billing.settings import BillingSettings
from services.kit.service import run
from services.kit.settings import load_settings


class InstantProvider:
    """Takes every payment and refund at once; no webhook ever follows."""

    async def create_payment(
        self,
        *,
        idempotency_key: str,
        amount_minor: int,
        currency: str,
        payment_method: str,
        metadata: dict[str, str],
    ) -> Payment:
        return Payment(id=f"pi_{uuid.uuid4().hex[:24]}", status="processing")

    async def create_refund(
        self, *, idempotency_key: str, payment_id: str, amount_minor: int, metadata: dict[str, str]
    ) -> ProviderRefund:
        return ProviderRefund(id=f"re_{uuid.uuid4().hex[:24]}", status="pending")

    async def close(self) -> None:
        return None


def main() -> None:
    run(build_spec(lambda settings: InstantProvider()), load_settings(BillingSettings))


if __name__ == "__main__":
    main()
