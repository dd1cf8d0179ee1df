"""Registrations to the contract."""

from __future__ import annotations

from services.events.registration.domain import Registration
from services.kit.timestamps import timestamp, timestamp_or_none
from studyhall.events.v1 import activities_service_pb2 as pb


def registration_to_proto(registration: Registration, position: int = 0) -> pb.Registration:
    return pb.Registration(
        id=registration.id,
        activity_id=registration.activity_id,
        community_id=registration.community_id,
        user_id=registration.user_id or "",
        state=pb.RegistrationState.ValueType(registration.state),
        waitlist_position=position,
        hold_until=timestamp_or_none(registration.hold_until),
        attendance=pb.Attendance.ValueType(registration.attendance),
        answers=[
            pb.RegistrationAnswer(question_id=key, text=text) for key, text in registration.answers
        ],
        register_time=timestamp(registration.registered_at),
        version=registration.version,
    )
