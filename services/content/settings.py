from __future__ import annotations

from typing import ClassVar

from services.kit.settings import ServiceSettings, service_config


class ContentSettings(ServiceSettings):
    service: ClassVar[str] = "content"
    default_grpc_port: ClassVar[int] = 50052
    default_metrics_port: ClassVar[int] = 9452
    model_config = service_config("content")
