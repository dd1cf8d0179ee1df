"""Redis as an accelerator: a failure degrades the caller instead of failing it.

Redis never holds the record. When it is unreachable, calls return their fallback at once
for a short cool-down instead of each waiting out a timeout, and the degradation is counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from opentelemetry import metrics
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")


class ResilientRedis:
    def __init__(
        self, url: str, *, timeout_seconds: float = 0.5, cooldown_seconds: float = 5.0
    ) -> None:
        self.url = url
        self.client: aioredis.Redis = aioredis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
        )
        self._cooldown = cooldown_seconds
        self._down_until = 0.0
        self._degraded = metrics.get_meter("studyhall.cache").create_counter(
            "studyhall.redis.degraded_calls",
            description="Calls answered with their fallback because Redis was unavailable.",
        )
        self._degraded.add(0)

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def call(self, operation: Callable[[aioredis.Redis], Awaitable[T]], fallback: T) -> T:
        if not self.available:
            self._degraded.add(1)
            return fallback
        try:
            return await operation(self.client)
        except (RedisError, OSError) as error:
            if self.available:
                log.warning("redis unavailable, degrading for %.0fs: %s", self._cooldown, error)
            self._down_until = time.monotonic() + self._cooldown
            self._degraded.add(1)
            return fallback

    async def ping(self) -> bool:
        result: Any = await self.call(lambda client: client.ping(), False)
        return bool(result)

    async def close(self) -> None:
        await self.client.aclose()
