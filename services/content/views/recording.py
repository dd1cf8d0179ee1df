"""Recording views: once per member, post and local day of the community.

The database decides: a view is a row keyed by (post, member, local day), inserted with
ON CONFLICT DO NOTHING, and only a row actually inserted stages its ContentViewed, in the
same transaction. Views arriving together commit together (kit/groups.py). Redis only spares
the database a view already known today; flushed or down, the key still counts each view
once (docs/decisions/0040).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.views.events import viewed
from services.content.views.store import View, add_new
from services.kit.access import Access
from services.kit.cache import ResilientRedis
from services.kit.database import Database
from services.kit.errors import DomainError
from services.kit.groups import GroupCommitter
from services.kit.zones import zone

log = logging.getLogger(__name__)

# A known view is remembered past the longest local day anywhere (UTC+14 to UTC-12).
REMEMBER_SECONDS = 2 * 24 * 3600
# A community's time zone changes rarely: read it again after this long.
ZONE_SECONDS = 60.0
MAX_ZONES = 10_000


class ViewRecorder:
    def __init__(
        self,
        database: Database,
        access: Access,
        redis: ResilientRedis,
        on_commit: Callable[[], None],
    ) -> None:
        self.access = access
        self.redis = redis
        self.committer: GroupCommitter[View, bool] = GroupCommitter(
            database, self._commit, on_commit
        )
        self._zones: dict[str, tuple[float, str]] = {}

    async def read(self, community_id: str, post_id: str, user_id: str) -> None:
        """`user_id` read the post: record the day's view unless it is known. A failure to
        record is logged, never the reader's error."""
        now = datetime.now(UTC)
        local_date = await self._local_date(community_id, now)
        key = f"studyhall:content:viewed:{post_id}:{user_id}:{local_date}"
        known = await self.redis.call(lambda client: client.exists(key), 0)
        if known:
            return
        try:
            await self.committer.submit(View(community_id, post_id, user_id, local_date, now))
        except Exception:
            log.warning("a view of post %s was not recorded", post_id, exc_info=True)
            return
        await self.redis.call(lambda client: client.set(key, 1, ex=REMEMBER_SECONDS), None)

    async def _commit(self, session: AsyncSession, views: list[View]) -> list[bool | DomainError]:
        new = await add_new(session, views)
        staged: dict[tuple[str, str, str], View] = {}
        for view in views:
            if view.key in new:
                staged.setdefault(view.key, view)
        await viewed(session, list(staged.values()))
        return [view.key in new for view in views]

    async def _local_date(self, community_id: str, now: datetime) -> str:
        cached = self._zones.get(community_id)
        if cached is None or cached[0] < time.monotonic():
            if len(self._zones) > MAX_ZONES:
                self._zones.clear()
            name = await self.access.time_zone(community_id)
            cached = (time.monotonic() + ZONE_SECONDS, name)
            self._zones[community_id] = cached
        local = zone(cached[1]) or zone("")
        assert local is not None
        return now.astimezone(local).date().isoformat()
