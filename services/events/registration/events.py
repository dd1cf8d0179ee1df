"""The facts about registrations and attendance, staged in the outbox in the caller's
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from opentelemetry.context import Context
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.registration.domain import CancelReason, Registration
from services.events.store.outbox import OUTBOX
from services.kit.events.outbox import Staged
from services.kit.timestamps import timestamp, timestamp_or_none
from studyhall.events.v1 import activities_events_pb2 as events


class RegistrationEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def registered(self, registration: Registration) -> None:
        await self._add(registration, registered(registration))

    async def waitlisted(self, registration: Registration, position: int) -> None:
        await self._add(registration, waitlisted(registration, position))

    async def many(self, facts: Sequence[tuple[Registration, Message, Context]]) -> None:
        """Facts of several callers' registrations, each continuing its caller's trace, with
        one statement."""
        await OUTBOX.add_many(
            self.session,
            [
                Staged(event, registration.community_id, _subject(registration), trace=trace)
                for registration, event, trace in facts
            ],
        )

    async def promoted(self, registration: Registration) -> None:
        await self._add(
            registration,
            events.Promoted(
                **_ids(registration),
                hold_until=timestamp_or_none(registration.hold_until),
                version=registration.version,
                promote_time=timestamp(registration.updated_at),
            ),
        )

    async def cancelled(
        self, registration: Registration, reason: CancelReason, by: str, product_id: str = ""
    ) -> None:
        await self._add(
            registration,
            events.RegistrationCancelled(
                **_ids(registration),
                reason=events.RegistrationCancelReason.ValueType(reason),
                cancelled_by_user_id=by,
                version=registration.version,
                cancel_time=timestamp(registration.updated_at),
                ticket_product_id=product_id,
            ),
        )

    async def attended(self, registration: Registration, by: str) -> None:
        await self._add(
            registration,
            events.AttendanceRecorded(
                **_ids(registration),
                recorded_by_user_id=by,
                version=registration.version,
                record_time=timestamp(registration.updated_at),
            ),
        )

    async def no_show(self, registration: Registration, now: datetime) -> None:
        await self._add(
            registration,
            events.NoShowRecorded(
                **_ids(registration),
                recorded_by_user_id="",
                version=registration.version,
                record_time=timestamp(now),
            ),
        )

    async def _add(self, registration: Registration, event: Message) -> None:
        await OUTBOX.add(
            self.session,
            event,
            community_id=registration.community_id,
            subject=_subject(registration),
        )


def registered(registration: Registration) -> events.Registered:
    return events.Registered(
        **_ids(registration),
        hold_until=timestamp_or_none(registration.hold_until),
        version=registration.version,
        register_time=timestamp(registration.updated_at),
    )


def waitlisted(registration: Registration, position: int) -> events.Waitlisted:
    return events.Waitlisted(
        **_ids(registration),
        position=position,
        version=registration.version,
        waitlist_time=timestamp(registration.updated_at),
    )


def _subject(registration: Registration) -> str:
    return (
        f"communities/{registration.community_id}/activities/"
        f"{registration.activity_id}/registrations/{registration.id}"
    )


def _ids(registration: Registration) -> dict[str, str]:
    return {
        "registration_id": registration.id,
        "activity_id": registration.activity_id,
        "community_id": registration.community_id,
        "user_id": registration.user_id or "",
    }
