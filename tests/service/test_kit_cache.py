"""Redis accelerates and never stops a service: an outage answers with the fallback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from typing import Any

import pytest
from redis.asyncio import Redis

from services.kit.cache import ResilientRedis
from tests.support.services import free_port

pytestmark = pytest.mark.service


async def test_real_redis_answers(redis_url: str) -> None:
    cache = ResilientRedis(redis_url)
    key = f"test:{uuid.uuid4()}"
    try:
        stored: Any = await cache.call(lambda client: client.set(key, "1", ex=60), None)
        assert stored
        value: Any = await cache.call(lambda client: client.get(key), None)
        assert value == b"1"
        assert await cache.ping()
    finally:
        await cache.close()


async def test_outage_degrades_to_the_fallback_without_waiting_each_time() -> None:
    # Nothing listens on this port: a real connection failure, not a simulated one.
    cache = ResilientRedis(f"redis://127.0.0.1:{free_port()}/0", cooldown_seconds=30)
    attempts = 0

    def get(client: Redis) -> Awaitable[Any]:
        nonlocal attempts
        attempts += 1
        return client.get("k")

    try:
        assert await cache.call(get, "fallback") == "fallback"
        assert not cache.available
        for _ in range(100):
            assert await cache.call(get, None) is None
        # Only the first call waited on the dead server; the rest answered at once.
        assert attempts == 1
        assert not await cache.ping()
    finally:
        await cache.close()


async def test_recovers_after_the_cooldown(redis_url: str) -> None:
    cache = ResilientRedis(redis_url, cooldown_seconds=0.05)
    try:
        cache._down_until = time.monotonic() + 0.05
        assert await cache.call(lambda client: client.ping(), False) is False
        await asyncio.sleep(0.06)
        assert await cache.call(lambda client: client.ping(), False) is True
    finally:
        await cache.close()
