"""Wiring of the members service process."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.settings import load_settings
from services.members import recognition_consumers
from services.members.api import SERVICE_NAME, MembersApi
from services.members.care_api import SERVICE_NAME as CARE_SERVICE_NAME
from services.members.care_api import CareApi
from services.members.care_sweep import sweep_loop
from services.members.checkins_api import SERVICE_NAME as CHECKINS_SERVICE_NAME
from services.members.checkins_api import CheckinsApi
from services.members.leaderboards import Leaderboards
from services.members.profiles_api import SERVICE_NAME as PROFILES_SERVICE_NAME
from services.members.profiles_api import ProfilesApi
from services.members.recognition_api import SERVICE_NAME as RECOGNITION_SERVICE_NAME
from services.members.recognition_api import RecognitionApi
from services.members.settings import MembersSettings
from services.members.store.tables import inbox, outbox
from studyhall.members.v1 import care_service_pb2_grpc as care_grpc
from studyhall.members.v1 import checkins_service_pb2_grpc as checkins_grpc
from studyhall.members.v1 import members_service_pb2_grpc as pb_grpc
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from studyhall.members.v1 import recognition_service_pb2_grpc as recognition_grpc


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    pb_grpc.add_MembersServiceServicer_to_server(
        MembersApi(deps.database, on_commit=deps.notify_outbox), server
    )
    profiles_grpc.add_ProfilesServiceServicer_to_server(
        ProfilesApi(deps.database, on_commit=deps.notify_outbox), server
    )
    checkins_grpc.add_CheckinsServiceServicer_to_server(
        CheckinsApi(deps.database, on_commit=deps.notify_outbox), server
    )
    recognition_grpc.add_RecognitionServiceServicer_to_server(
        RecognitionApi(
            deps.database, recognition_consumers.FEED.boards, on_commit=deps.notify_outbox
        ),
        server,
    )
    care_grpc.add_CareServiceServicer_to_server(
        CareApi(deps.database, on_commit=deps.notify_outbox), server
    )


def prepare(deps: Dependencies) -> None:
    # One set of leaderboards per process, written by the API and by the point consumers.
    recognition_consumers.FEED.attach(Leaderboards(deps.redis, deps.database))
    # Every serving replica sweeps; the signals table lets one of them send each signal.
    settings = deps.settings
    if isinstance(settings, MembersSettings) and settings.care_sweep_seconds > 0:
        deps.background.append(
            sweep_loop(deps.database, settings.care_sweep_seconds, deps.notify_outbox)
        )


SPEC = ServiceSpec(
    name="members",
    migrations=Path(__file__).parent / "store" / "migrations",
    service_names=[
        SERVICE_NAME,
        RECOGNITION_SERVICE_NAME,
        PROFILES_SERVICE_NAME,
        CHECKINS_SERVICE_NAME,
        CARE_SERVICE_NAME,
    ],
    register=register,
    prepare=prepare,
    outbox=outbox,
    inbox=inbox,
    subscriptions=[recognition_consumers.CONTENT, recognition_consumers.MEMBERS],
)


def main() -> None:
    run(SPEC, load_settings(MembersSettings))
