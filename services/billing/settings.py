from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from services.kit.settings import ServiceSettings, service_config


class BillingSettings(ServiceSettings):
    service: ClassVar[str] = "billing"
    default_grpc_port: ClassVar[int] = 50054
    default_metrics_port: ClassVar[int] = 9454
    model_config = service_config("billing")

    provider_url: str = Field(
        "http://127.0.0.1:12111",
        pattern=r"^https?://",
        description="Base URL of the payment provider's API (the sandbox: `python -m "
        "services.billing.sandbox`).",
    )
    provider_api_key: str = Field(
        "sk_test_studyhall",
        min_length=1,
        description="Secret key billing sends the payment provider as a bearer token.",
    )
    webhook_secret: str = Field(
        "whsec_studyhall_local",
        min_length=8,
        description="Shared secret the provider signs webhooks with (Stripe-Signature v1).",
    )
    webhook_host: str = Field("127.0.0.1", description="Address the webhook endpoint binds.")
    webhook_port: int = Field(
        8054,
        ge=0,
        le=65535,
        description="Port of the webhook endpoint (HTTP: POST /webhooks/provider, GET /readyz); "
        "0 takes any free port.",
    )
    webhook_tolerance_seconds: float = Field(
        300,
        gt=0,
        description="How far a webhook's signed timestamp may be from now: older deliveries "
        "are refused as replays.",
    )
