from __future__ import annotations

from typing import ClassVar

from services.kit.settings import ServiceSettings, service_config


class EventsSettings(ServiceSettings):
    service: ClassVar[str] = "events"
    default_grpc_port: ClassVar[int] = 50053
    default_metrics_port: ClassVar[int] = 9453
    model_config = service_config("events")
