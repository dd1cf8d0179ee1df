"""What analytics holds about a member, for ExportMyData and EraseMyData (and MemberErased):
whether they count in the community's figures, and the version of the fact that said so.

Erasure keeps that row, as members keeps the membership: it is the user id and a flag, the
member count is counted from it, and its version is what stops a late MemberJoined from
counting an erased member again (docs/decisions/0016-data-rights-across-services.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.store.tables import member_states


async def export_counted(
    session: AsyncSession, community_id: str, user_id: str
) -> dict[str, Any] | None:
    row = (
        await session.execute(
            select(member_states.c.active, member_states.c.version).where(
                member_states.c.community_id == community_id, member_states.c.user_id == user_id
            )
        )
    ).first()
    return None if row is None else {"counted": bool(row.active), "version": int(row.version)}


EXPORTS = {"member_count": export_counted}
# Nothing to erase: the row is the user id and whether they count (see above).
ERASERS = ()
