"""A member's data rights in one service: the export document and erasure, in one shape.

A service lists the parts of itself that hold member data (its data holders). Each holder
names the sections it adds to the export (`EXPORTS`: section -> exporter returning a
JSON-serializable value) and what erasure runs in it (`ERASERS`). Both are called inside
the caller's transaction with (session, community_id, user_id). The list is explicit: a
holder is exported and erased because the service names it, not because it was imported.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

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


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")
