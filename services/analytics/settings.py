from __future__ import annotations

from typing import ClassVar

from services.kit.settings import ServiceSettings, service_config


class AnalyticsSettings(ServiceSettings):
    service: ClassVar[str] = "analytics"
    default_grpc_port: ClassVar[int] = 50055
    default_metrics_port: ClassVar[int] = 9455
    model_config = service_config("analytics")
