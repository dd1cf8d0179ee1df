"""Leaderboards in Redis sorted sets, rebuilt from the ledger whenever Redis lost them.

Per community: one ZSET per local day (`day:<date>`), one for all time (`all`), the 7- and
30-day boards as short-lived ZUNIONSTOREs of the day buckets, and a marker holding the id
of the last ledger entry the boards include (docs/decisions/0008-leaderboards-in-redis.md).
Entries are added after their transaction commits, only when the marker is there and the
entry is newer than it; a read that finds no marker rebuilds from the ledger. Without
Redis, boards are computed from the ledger in SQL.
"""

from __future__ import annotations

import enum
import logging
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import redis.asyncio as aioredis

from services.kit.cache import ResilientRedis
from services.kit.database import Database
from services.members.recognition.store import LedgerRepository

log = logging.getLogger(__name__)


class Window(enum.IntEnum):
    # Same numbers as studyhall.members.v1.LeaderboardWindow.
    LAST_7_DAYS = 1
    LAST_30_DAYS = 2
    ALL_TIME = 3

    @property
    def days(self) -> int:
        return {Window.LAST_7_DAYS: 7, Window.LAST_30_DAYS: 30}.get(self, 0)


# Day buckets outlive the longest window by a little, then Redis drops them.
BUCKET_DAYS = 32
# A marker lives this long: whatever drift escaped every other guard heals at the rebuild.
MARKER_SECONDS = 3600
UNION_SECONDS = 5
REBUILD_LOCK_SECONDS = 30
_CHUNK = 5000


@dataclass(frozen=True)
class BoardEntry:
    community_id: str
    entry_id: int
    user_id: str
    amount: int
    local_date: date


def _prefix(community_id: str) -> str:
    # The hash tag keeps a community's keys in one slot, so scripts work on Redis Cluster.
    return f"lb:{{{community_id}}}:"


def _keys(community_id: str) -> dict[str, str]:
    prefix = _prefix(community_id)
    return {
        "marker": prefix + "ready",
        "all": prefix + "all",
        "lock": prefix + "rebuild",
    }


def _day(community_id: str, day: date) -> str:
    return f"{_prefix(community_id)}day:{day.isoformat()}"


def _union(community_id: str, window: Window, today: date) -> str:
    return f"{_prefix(community_id)}w{window.days}:{today.isoformat()}"


def _expiry(day: date) -> int:
    return int(datetime.combine(day + timedelta(days=BUCKET_DAYS), time(), UTC).timestamp())


def today_in(zone: zoneinfo.ZoneInfo, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(zone).date()


_ADD = """
local mark = redis.call('GET', KEYS[1])
if not mark or tonumber(ARGV[1]) <= tonumber(mark) then return 0 end
redis.call('ZINCRBY', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZINCRBY', KEYS[3], ARGV[3], ARGV[2])
redis.call('EXPIREAT', KEYS[3], ARGV[4])
redis.call('DEL', KEYS[4], KEYS[5])
return 1
"""

_READ = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[3] == 'union' and redis.call('EXISTS', KEYS[2]) == 0 then
  local days = {}
  for i = 3, #KEYS do days[#days + 1] = KEYS[i] end
  redis.call('ZUNIONSTORE', KEYS[2], #days, unpack(days))
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return redis.call('ZREVRANGEBYSCORE', KEYS[2], '+inf', '(0', 'WITHSCORES',
  'LIMIT', ARGV[1], ARGV[2])
"""


class Leaderboards:
    def __init__(self, redis: ResilientRedis, database: Database | None = None) -> None:
        # Without a database (a consumer-only process) the boards are written, not read.
        self.redis = redis
        self._database = database
        # Communities whose board missed a write while Redis could not even take the
        # marker's deletion: the marker goes as soon as Redis answers again.
        self._dirty: set[str] = set()

    async def record(
        self, entries: Sequence[BoardEntry], zones: dict[str, zoneinfo.ZoneInfo]
    ) -> None:
        """Add committed ledger entries to the boards."""
        for entry in entries:
            if not await self._clean(entry.community_id):
                continue
            today = today_in(zones[entry.community_id])
            keys = [
                _keys(entry.community_id)["marker"],
                _keys(entry.community_id)["all"],
                _day(entry.community_id, entry.local_date),
                _union(entry.community_id, Window.LAST_7_DAYS, today),
                _union(entry.community_id, Window.LAST_30_DAYS, today),
            ]
            args = [entry.entry_id, entry.user_id, entry.amount, _expiry(entry.local_date)]

            async def add(
                client: aioredis.Redis, keys: list[str] = keys, args: list[Any] = args
            ) -> bool:
                await client.eval(_ADD, len(keys), *keys, *args)
                return True

            if not await self.redis.call(add, False):
                await self.forget(entry.community_id)

    async def top(
        self,
        community_id: str,
        window: Window,
        zone: zoneinfo.ZoneInfo,
        *,
        offset: int,
        limit: int,
    ) -> list[tuple[str, int]]:
        today = today_in(zone)
        if await self._clean(community_id):
            found = await self._read(community_id, window, today, offset, limit)
            if found is None and await self._rebuild(community_id, zone):
                found = await self._read(community_id, window, today, offset, limit)
            if found is not None:
                return found
        return await self.from_ledger(community_id, window, zone, offset=offset, limit=limit)

    async def from_ledger(
        self,
        community_id: str,
        window: Window,
        zone: zoneinfo.ZoneInfo,
        *,
        offset: int,
        limit: int,
    ) -> list[tuple[str, int]]:
        since = None if window is Window.ALL_TIME else today_in(zone) - timedelta(window.days - 1)
        async with self.database.read() as session:
            return await LedgerRepository(session).board(
                community_id, since, offset=offset, limit=limit
            )

    async def _read(
        self, community_id: str, window: Window, today: date, offset: int, limit: int
    ) -> list[tuple[str, int]] | None:
        keys = _keys(community_id)
        if window is Window.ALL_TIME:
            script_keys = [keys["marker"], keys["all"]]
            mode = "all"
        else:
            days = [_day(community_id, today - timedelta(n)) for n in range(window.days)]
            script_keys = [keys["marker"], _union(community_id, window, today), *days]
            mode = "union"

        async def read(client: aioredis.Redis) -> Any:
            return await client.eval(
                _READ, len(script_keys), *script_keys, offset, limit, mode, UNION_SECONDS
            )

        reply = await self.redis.call(read, None)
        if reply is None:
            return None
        pairs = list(reply)
        return [
            (_text(pairs[index]), int(float(pairs[index + 1]))) for index in range(0, len(pairs), 2)
        ]

    @property
    def database(self) -> Database:
        assert self._database is not None, "reading leaderboards needs the database"
        return self._database

    async def _rebuild(self, community_id: str, zone: zoneinfo.ZoneInfo) -> bool:
        """Refill a community's boards from the ledger; False when another reader is at it
        or Redis is away (the caller reads SQL)."""
        keys = _keys(community_id)

        async def lock(client: aioredis.Redis) -> bool:
            return bool(await client.set(keys["lock"], "1", nx=True, ex=REBUILD_LOCK_SECONDS))

        if not await self.redis.call(lock, False):
            return False
        today = today_in(zone)
        first = today - timedelta(BUCKET_DAYS - 1)
        async with self.database.read() as session:
            ledger = LedgerRepository(session)
            high_water = await ledger.high_water(community_id)
            # Bounded by the high-water mark, so the marker says exactly what is included.
            daily = await ledger.daily_sums(community_id, first, high_water)
            totals = await ledger.totals(community_id, high_water)
        buckets: dict[date, dict[str, int]] = {}
        for day, user_id, points in daily:
            buckets.setdefault(day, {})[user_id] = points

        async def refill(client: aioredis.Redis) -> bool:
            pipe = client.pipeline(transaction=True)
            stale = [_day(community_id, first + timedelta(n)) for n in range(BUCKET_DAYS + 2)]
            pipe.delete(keys["all"], *stale)
            pipe.delete(
                *(_union(community_id, w, today) for w in (Window.LAST_7_DAYS, Window.LAST_30_DAYS))
            )
            for chunk in _chunks(totals):
                pipe.zadd(keys["all"], dict(chunk))
            for day, scores in buckets.items():
                for chunk in _chunks(list(scores.items())):
                    pipe.zadd(_day(community_id, day), dict(chunk))
                pipe.expireat(_day(community_id, day), _expiry(day))
            pipe.set(keys["marker"], high_water, ex=MARKER_SECONDS)
            pipe.delete(keys["lock"])
            await pipe.execute()
            return True

        return bool(await self.redis.call(refill, False))

    async def forget(self, community_id: str) -> None:
        """Drop a community's board marker so the next read rebuilds it from the ledger: after
        a missed write, or when entries left the ledger (erasure)."""
        marker = _keys(community_id)["marker"]

        async def forget(client: aioredis.Redis) -> bool:
            await client.delete(marker)
            return True

        if not await self.redis.call(forget, False):
            log.warning(
                "leaderboard of %s missed an entry; rebuilding once Redis answers", community_id
            )
            self._dirty.add(community_id)

    async def _clean(self, community_id: str) -> bool:
        """False while a board known to have missed an entry cannot be invalidated yet."""
        if community_id not in self._dirty:
            return True
        self._dirty.discard(community_id)
        await self.forget(community_id)
        return community_id not in self._dirty


def _chunks(items: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    return [items[start : start + _CHUNK] for start in range(0, len(items), _CHUNK)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
