"""A member's data rights in one service: the export document and erasure, in one shape.

A service lists the parts of itself that hold member data (its data holders). Each holder
names the sections it adds to the export (`EXPORTS`: section -> exporter returning a
JSON-serializable value) and what erasure runs in it (`ERASERS`). Both are called inside
the caller's transaction with (session, community_id, user_id). The list is explicit: a
holder is exported and erased because the service names it, not because it was imported.

Members owns the membership and answers its own ExportMyData and EraseMyData; every other
service answers them for its own records (`services/kit/data_rights_api.py`) and runs the
same erasers when members publishes MemberErased (`erasure_subscription`), so erasing in
members reaches every copy, and erasing in one service alone is possible too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.events.consumer import Subscription
from services.kit.events.envelope import Envelope
from studyhall.members.v1 import members_events_pb2 as members_events

Exporter = Callable[[AsyncSession, str, str], Awaitable[Any]]
Eraser = Callable[[AsyncSession, str, str], Awaitable[None]]

CONTENT_TYPE = "application/json"


class DataHolder(Protocol):
    """A module (or object) that holds member data: its export sections and erasers."""

    @property
    def EXPORTS(self) -> Mapping[str, Exporter]: ...

    @property
    def ERASERS(self) -> Sequence[Eraser]: ...


def check_holders(holders: Sequence[DataHolder]) -> None:
    """Two holders must not claim one section: the later would hide the earlier."""
    seen: set[str] = set()
    for holder in holders:
        for section in holder.EXPORTS:
            if section in seen:
                raise ValueError(f"export section {section!r} is claimed twice")
            seen.add(section)


async def export_document(
    session: AsyncSession, holders: Sequence[DataHolder], community_id: str, user_id: str
) -> bytes:
    document: dict[str, Any] = {
        "community_id": community_id,
        "user_id": user_id,
        "export_time": datetime.now(UTC).isoformat(),
    }
    for holder in holders:
        for section, export in holder.EXPORTS.items():
            document[section] = await export(session, community_id, user_id)
    return json.dumps(document, ensure_ascii=False, indent=2, default=_json_value).encode()


async def erase_all(
    session: AsyncSession, holders: Sequence[DataHolder], community_id: str, user_id: str
) -> None:
    for holder in holders:
        for erase in holder.ERASERS:
            await erase(session, community_id, user_id)


def erasure_subscription(service: str, holders: Sequence[DataHolder]) -> Subscription:
    """The durable consumer that runs `holders`' erasers on members' MemberErased, in the
    consumer's transaction (so a redelivered event erases again, which changes nothing)."""

    async def apply(session: AsyncSession, batch: list[tuple[Any, Envelope]]) -> None:
        for event, _envelope in batch:
            await erase_all(session, holders, event.community_id, event.user_id)

    return Subscription(
        name=f"{service}-erasure",
        source_service="members",
        event_types=(members_events.MemberErased,),
        apply=apply,
    )


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")
