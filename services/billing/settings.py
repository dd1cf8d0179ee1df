from __future__ import annotations

from typing import ClassVar

from services.kit.settings import ServiceSettings, service_config


class BillingSettings(ServiceSettings):
    service: ClassVar[str] = "billing"
    default_grpc_port: ClassVar[int] = 50054
    default_metrics_port: ClassVar[int] = 9454
    model_config = service_config("billing")
