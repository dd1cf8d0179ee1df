from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from services.kit.settings import ServiceSettings, service_config


class EventsSettings(ServiceSettings):
    service: ClassVar[str] = "events"
    default_grpc_port: ClassVar[int] = 50053
    default_metrics_port: ClassVar[int] = 9453
    model_config = service_config("events")

    members_address: str = Field(
        "127.0.0.1:50051",
        min_length=1,
        description="host:port of the members service's gRPC API, asked for a segment's "
        "members when an activity is invited to a segment.",
    )
