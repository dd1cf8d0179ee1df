from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from services.kit.settings import ServiceSettings, service_config


class BillingSettings(ServiceSettings):
    service: ClassVar[str] = "billing"
    default_grpc_port: ClassVar[int] = 50054
    default_metrics_port: ClassVar[int] = 9454
    model_config = service_config("billing")

    provider: Literal["sandbox", "stripe"] = Field(
        "sandbox",
        description="The payment provider adapter: `sandbox` (the sandbox provider's HTTP API) "
        "or `stripe` (the official stripe package; unverified against live Stripe).",
    )
    provider_url: str = Field(
        "http://127.0.0.1:12111",
        pattern=r"^https?://",
        description="Base URL of the payment provider's API (the sandbox: `python -m "
        "services.billing.sandbox`; Stripe: https://api.stripe.com).",
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
    members_address: str = Field(
        "127.0.0.1:50051",
        min_length=1,
        description="host:port of the members service's gRPC API, asked for a segment's "
        "members when a coupon is limited to a segment.",
    )
    subscription_day_seconds: float = Field(
        86400,
        gt=0,
        description="How long a day of a plan's trial lasts, in seconds (86400; tests run "
        "trials in seconds).",
    )
    subscription_month_seconds: float = Field(
        0,
        ge=0,
        description="How long a monthly period lasts, in seconds (a yearly one twelve times "
        "it); 0 for calendar months and years.",
    )
    dunning_retry_seconds: str = Field(
        "86400,259200,432000",
        description="When a failed renewal is tried again, in seconds after the period's "
        "end, comma-separated (default 1, 3 and 5 days).",
    )
    dunning_grace_seconds: float = Field(
        604800,
        gt=0,
        description="How long after the period's end a subscriber whose renewal keeps failing "
        "keeps access before the subscription ends (default 7 days).",
    )

    @field_validator("dunning_retry_seconds")
    @classmethod
    def _retries(cls, value: str) -> str:
        try:
            retries = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("expected seconds separated by commas, e.g. 86400,259200") from None
        if any(b <= a for a, b in zip([0.0, *retries], retries, strict=False)):
            raise ValueError("expected increasing positive seconds, e.g. 86400,259200,432000")
        return value

    @property
    def dunning_retries(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.dunning_retry_seconds.split(",") if part.strip())
