"""The care signals the sweep decided, as facts for the consumers that deliver them (push,
mail, chat apps), staged in the members outbox in the sweep's transaction. The signal's own
id is the event id, so a signal is published once whichever replica swept it."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events.outbox import Staged
from services.members.care import domain as care
from services.members.care.domain import Signal
from services.members.store.outbox import OUTBOX
from studyhall.members.v1 import care_events_pb2 as events

OCCASIONS = {
    care.BIRTHDAY: events.GREETING_OCCASION_BIRTHDAY,
    care.HOLIDAY: events.GREETING_OCCASION_HOLIDAY,
}


class CareEvents:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def signals_sent(self, signals: Sequence[Signal]) -> None:
        await OUTBOX.add_many(self.session, [_staged(signal) for signal in signals])


def _staged(signal: Signal) -> Staged:
    return Staged(
        event_message(signal),
        signal.community_id,
        f"communities/{signal.community_id}/members/{signal.user_id}",
        event_id=signal.event_id,
    )


def event_message(signal: Signal) -> Message:
    base = {
        "community_id": signal.community_id,
        "user_id": signal.user_id,
        "local_date": signal.local_date.isoformat(),
    }
    if signal.kind == care.MEMBER_INACTIVE:
        return events.MemberInactive(**base, days_inactive=signal.days)
    if signal.kind == care.STREAK_AT_RISK:
        return events.StreakAtRisk(**base, streak_days=signal.days)
    return events.Greeting(
        **base, occasion=OCCASIONS[signal.occasion], holiday_name=signal.holiday_name
    )
