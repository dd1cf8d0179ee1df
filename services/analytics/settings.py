from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from services.kit.settings import ServiceSettings, service_config


class AnalyticsSettings(ServiceSettings):
    service: ClassVar[str] = "analytics"
    default_grpc_port: ClassVar[int] = 50055
    default_metrics_port: ClassVar[int] = 9455
    model_config = service_config("analytics")

    members_address: str = Field(
        "127.0.0.1:50051",
        min_length=1,
        description="host:port of the members service's gRPC API, asked for a segment's "
        "members when a survey is sent to a segment or its results are read by segment.",
    )
