from __future__ import annotations

from typing import ClassVar

from services.kit.settings import ServiceSettings, service_config


class MembersSettings(ServiceSettings):
    service: ClassVar[str] = "members"
    default_grpc_port: ClassVar[int] = 50051
    default_metrics_port: ClassVar[int] = 9451
    model_config = service_config("members")
