"""Connecting to NATS: reconnect forever once connected, and retry the first connection with
capped backoff, because a broker outage must be absorbed, never fatal."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client

log = logging.getLogger(__name__)


async def connect(url: str, name: str, *, max_backoff: float = 5.0) -> Client:
    async def disconnected() -> None:
        log.info("%s disconnected from NATS", name)

    async def reconnected() -> None:
        log.info("%s reconnected to NATS", name)

    delay = 0.1
    while True:
        try:
            return await nats.connect(
                servers=[server.strip() for server in url.split(",")],
                name=name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=2,
                # Without a callback nats-py logs every failed attempt at ERROR.
                error_cb=_quiet,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "%s cannot reach NATS at %s, retrying in %.1fs: %s", name, url, delay, error
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)


async def _quiet(error: Exception) -> None:
    log.debug("nats: %s", error)
