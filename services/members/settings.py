from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from services.kit.settings import ServiceSettings, service_config


class MembersSettings(ServiceSettings):
    service: ClassVar[str] = "members"
    default_grpc_port: ClassVar[int] = 50051
    default_metrics_port: ClassVar[int] = 9451
    model_config = service_config("members")

    care_sweep_seconds: float = Field(
        300,
        ge=0,
        description="Seconds between member-care sweeps (inactive, streak, greeting signals); "
        "0 turns the sweep off in this process.",
    )
