"""Wiring of the members service process: the composition root.

Each capability package (communities, moderation, privacy, recognition, personas, segments,
check-ins, care) brings its handlers; this module builds them once per process, composes
them into the five gRPC services, and hands a capability what it needs from another (the
privilege check of recognition to the invites of communities, the leaderboards to privacy's
erasure), so no capability's API imports another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

from services.kit.events.consumer import Subscription
from services.kit.idempotency import IdempotentWriter
from services.kit.service import Dependencies, ServiceSpec, run
from services.kit.servicers import compose
from services.kit.settings import load_settings
from services.members.care.api import SERVICE as CARE_SERVICE
from services.members.care.api import CareApi
from services.members.care.sweep import sweep_loop
from services.members.checkins.api import SERVICE as CHECKINS_SERVICE
from services.members.checkins.api import CheckinsApi
from services.members.communities.api import SERVICE as MEMBERS_SERVICE
from services.members.communities.api import CommunitiesApi
from services.members.communities.invites_api import InvitesApi
from services.members.communities.rules_api import RulesApi
from services.members.moderation import consumers as moderation_consumers
from services.members.moderation.api import ModerationApi
from services.members.personas.api import SERVICE as PROFILES_SERVICE
from services.members.personas.api import ProfilesApi
from services.members.privacy.api import PrivacyApi
from services.members.recognition.api import SERVICE as RECOGNITION_SERVICE
from services.members.recognition.api import RecognitionApi
from services.members.recognition.consumers import PointsFromFacts
from services.members.recognition.leaderboards import Leaderboards
from services.members.recognition.store import holds_privilege
from services.members.segments.api import SegmentsApi
from services.members.settings import MembersSettings
from services.members.store.tables import idempotency_keys, inbox, outbox
from studyhall.members.v1 import care_service_pb2_grpc as care_grpc
from studyhall.members.v1 import checkins_service_pb2_grpc as checkins_grpc
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc
from studyhall.members.v1 import recognition_service_pb2_grpc as recognition_grpc


def register(server: grpc.aio.Server, deps: Dependencies) -> None:
    database = deps.database
    # One writer for every mutating RPC: the idempotency keys, the relay woken on commit.
    writer = IdempotentWriter(database, idempotency_keys, on_commit=deps.notify_outbox)
    boards = Leaderboards(deps.redis, database)
    members_grpc.add_MembersServiceServicer_to_server(
        compose(
            members_grpc.MembersServiceServicer,
            MEMBERS_SERVICE,
            CommunitiesApi(database, writer),
            InvitesApi(database, writer, holds_privilege),
            RulesApi(database, writer),
            ModerationApi(database, writer),
            PrivacyApi(database, writer, after_erase=boards.forget),
        ),
        server,
    )
    profiles_grpc.add_ProfilesServiceServicer_to_server(
        compose(
            profiles_grpc.ProfilesServiceServicer,
            PROFILES_SERVICE,
            ProfilesApi(database, writer),
            SegmentsApi(database, writer),
        ),
        server,
    )
    checkins_grpc.add_CheckinsServiceServicer_to_server(
        compose(
            checkins_grpc.CheckinsServiceServicer, CHECKINS_SERVICE, CheckinsApi(database, writer)
        ),
        server,
    )
    recognition_grpc.add_RecognitionServiceServicer_to_server(
        compose(
            recognition_grpc.RecognitionServiceServicer,
            RECOGNITION_SERVICE,
            RecognitionApi(database, writer, boards),
        ),
        server,
    )
    care_grpc.add_CareServiceServicer_to_server(
        compose(care_grpc.CareServiceServicer, CARE_SERVICE, CareApi(database, writer)), server
    )


def subscriptions(deps: Dependencies) -> Sequence[Subscription]:
    # The consumers write the leaderboards the API reads: the same Redis, their own handle.
    return [
        *PointsFromFacts(Leaderboards(deps.redis, deps.database)).subscriptions(),
        *moderation_consumers.subscriptions(),
    ]


def prepare(deps: Dependencies) -> None:
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
        MEMBERS_SERVICE.full_name,
        RECOGNITION_SERVICE.full_name,
        PROFILES_SERVICE.full_name,
        CHECKINS_SERVICE.full_name,
        CARE_SERVICE.full_name,
    ],
    register=register,
    prepare=prepare,
    outbox=outbox,
    inbox=inbox,
    subscriptions=subscriptions,
)


def main() -> None:
    run(SPEC, load_settings(MembersSettings))
