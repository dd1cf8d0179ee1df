from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from services.kit.settings import ServiceSettings, service_config


class ContentSettings(ServiceSettings):
    service: ClassVar[str] = "content"
    default_grpc_port: ClassVar[int] = 50052
    default_metrics_port: ClassVar[int] = 9452
    model_config = service_config("content")

    members_address: str = Field(
        "127.0.0.1:50051",
        min_length=1,
        description="host:port of the members service's gRPC API, asked for a segment's "
        "members when a path is recommended to a segment.",
    )
