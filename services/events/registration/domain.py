"""Registrations: seats, held seats, the waitlist and attendance. Rules only, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import IntEnum

from services.events.activities.domain import Activity, Question, check_scheduled
from services.kit.errors import FailedPrecondition, InvalidArgument

ANSWER_MAX = 2_000
# The scheduler's job that ends a held seat.
EXPIRE_HOLD = "expire_hold"
# Check-in opens this long before the start and closes at the end.
CHECK_IN_OPENS = timedelta(hours=1)


class RegistrationState(IntEnum):
    SEATED = 1
    HELD = 2
    WAITLISTED = 3
    CANCELLED = 4


class Attendance(IntEnum):
    UNKNOWN = 0
    ATTENDED = 1
    NO_SHOW = 2


class CancelReason(IntEnum):
    """As RegistrationCancelReason in the contract."""

    BY_MEMBER = 1
    BY_ORGANIZER = 2
    HOLD_EXPIRED = 3
    ACTIVITY_CANCELLED = 4
    MEMBER_LEFT = 5


ACTIVE = frozenset({RegistrationState.SEATED, RegistrationState.HELD, RegistrationState.WAITLISTED})
WITH_SEAT = frozenset({RegistrationState.SEATED, RegistrationState.HELD})


@dataclass(frozen=True)
class Registration:
    id: str
    activity_id: str
    community_id: str
    user_id: str | None
    state: RegistrationState
    registered_at: datetime
    updated_at: datetime
    attendance: Attendance = Attendance.UNKNOWN
    waitlist_ticket: int | None = None
    hold_until: datetime | None = None
    answers: tuple[tuple[str, str], ...] = ()
    version: int = 1

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def seated(self) -> bool:
        return self.state in WITH_SEAT


def check_answers(
    questions: Sequence[Question], answers: Mapping[str, str], field: str = "answers"
) -> None:
    asked = {question.id: question for question in questions}
    for question_id, text in answers.items():
        if question_id not in asked:
            raise InvalidArgument.field(field, f"{question_id!r:.60} is not a question asked")
        if len(text) > ANSWER_MAX:
            raise InvalidArgument.field(field, f"the answer to {question_id!r} is too long")
    for question in questions:
        if question.required and not answers.get(question.id, "").strip():
            raise InvalidArgument.field(field, f"{question.id!r} must be answered")


def check_open(activity: Activity, now: datetime) -> None:
    check_scheduled(activity, "registered for")
    if activity.start_time <= now:
        raise FailedPrecondition(f"activity {activity.id} has started; registration is closed")


def registration_for(
    existing: Registration | None,
    activity: Activity,
    user_id: str,
    answers: Mapping[str, str],
    now: datetime,
) -> Registration:
    """The member's registration before a seat or a place is found for it: new, or their
    cancelled one reused."""
    if existing is not None and existing.active:
        raise FailedPrecondition(
            f"you are already registered for activity {activity.id} ({existing.state.name.lower()})"
        )
    answered = tuple(sorted((key, text.strip()) for key, text in answers.items()))
    if existing is None:
        return Registration(
            id=str(uuid.uuid4()),
            activity_id=activity.id,
            community_id=activity.community_id,
            user_id=user_id,
            state=RegistrationState.SEATED,
            registered_at=now,
            updated_at=now,
            answers=answered,
            version=0,
        )
    return replace(existing, registered_at=now, answers=answered, attendance=Attendance.UNKNOWN)


def seated(registration: Registration, now: datetime) -> Registration:
    return replace(
        registration,
        state=RegistrationState.SEATED,
        waitlist_ticket=None,
        hold_until=None,
        updated_at=now,
        version=registration.version + 1,
    )


def waitlisted(registration: Registration, ticket: int, now: datetime) -> Registration:
    return replace(
        registration,
        state=RegistrationState.WAITLISTED,
        waitlist_ticket=ticket,
        hold_until=None,
        updated_at=now,
        version=registration.version + 1,
    )


def held(registration: Registration, until: datetime, now: datetime) -> Registration:
    return replace(
        registration,
        state=RegistrationState.HELD,
        waitlist_ticket=None,
        hold_until=until,
        updated_at=now,
        version=registration.version + 1,
    )


def cancelled(registration: Registration, now: datetime) -> Registration:
    if not registration.active:
        raise FailedPrecondition(f"registration {registration.id} is already cancelled")
    return replace(
        registration,
        state=RegistrationState.CANCELLED,
        waitlist_ticket=None,
        hold_until=None,
        updated_at=now,
        version=registration.version + 1,
    )


def confirmed(registration: Registration, now: datetime) -> Registration:
    if registration.state is not RegistrationState.HELD:
        raise FailedPrecondition(
            f"registration {registration.id} holds no seat to confirm "
            f"({registration.state.name.lower()})"
        )
    return seated(registration, now)


def attended(registration: Registration, now: datetime) -> Registration:
    if registration.attendance is Attendance.ATTENDED:
        raise FailedPrecondition(f"registration {registration.id} is already checked in")
    return replace(
        registration,
        state=RegistrationState.SEATED,
        attendance=Attendance.ATTENDED,
        hold_until=None,
        updated_at=now,
        version=registration.version + 1,
    )


def no_show(registration: Registration, now: datetime) -> Registration:
    return replace(
        registration,
        attendance=Attendance.NO_SHOW,
        updated_at=now,
        version=registration.version + 1,
    )


def check_in_window(activity: Activity, now: datetime) -> None:
    check_scheduled(activity, "checked in to")
    if now < activity.start_time - CHECK_IN_OPENS:
        raise FailedPrecondition(
            f"check-in for activity {activity.id} opens an hour before it starts"
        )
    if now > activity.ends_at:
        raise FailedPrecondition(f"activity {activity.id} has ended; check-in is closed")
