"""Connecting to NATS: reconnect forever once connected, and retry the first connection with
capped backoff, because a broker outage must be absorbed, never fatal."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NatsAuth:
    """Who a process is to NATS and whom it trusts: a user and password (the prod overlay's
    cluster refuses anonymous clients), and TLS with a private CA and, where the server asks
    for one, a client certificate. Empty fields are not used."""

    user: str = ""
    password: str = ""
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""

    def options(self) -> dict[str, Any]:
        """Keyword arguments of `nats.connect`."""
        found: dict[str, Any] = {}
        if self.user:
            found["user"] = self.user
            found["password"] = self.password
        if self.tls_ca_file or self.tls_cert_file:
            context = ssl.create_default_context(cafile=self.tls_ca_file or None)
            if self.tls_cert_file:
                context.load_cert_chain(self.tls_cert_file, self.tls_key_file or None)
            found["tls"] = context
        return found


def servers(url: str) -> list[str]:
    """The servers of a NATS URL setting, which may name several (a cluster's nodes)."""
    return [server.strip() for server in url.split(",") if server.strip()]


async def connect(
    url: str, name: str, *, auth: NatsAuth | None = None, max_backoff: float = 5.0
) -> Client:
    async def disconnected() -> None:
        log.info("%s disconnected from NATS", name)

    async def reconnected() -> None:
        log.info("%s reconnected to NATS", name)

    delay = 0.1
    while True:
        try:
            return await nats.connect(
                servers=servers(url),
                name=name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=2,
                # Without a callback nats-py logs every failed attempt at ERROR.
                error_cb=_quiet,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                **(auth or NatsAuth()).options(),
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
