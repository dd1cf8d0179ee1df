"""Webhook delivery over aiohttp: signed, retried with capped exponential backoff."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from studyhall_notifier.signing import signed_headers

log = logging.getLogger("studyhall_notifier")


class DeliveryFailed(Exception):
    """The endpoint did not take the webhook; the event is delivered again later."""


@dataclass(frozen=True)
class Backoff:
    attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.first_delay * 2 ** (attempt - 1), self.max_delay))


# Worth another attempt: the endpoint is down, overloaded or said "later".
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class WebhookSender:
    session: aiohttp.ClientSession
    url: str
    secret: bytes
    backoff: Backoff = Backoff()
    timeout: float = 10.0
    clock: Callable[[], float] = time.time

    async def send(self, body: bytes, *, event_id: str, event_type: str) -> None:
        """POST until a 2xx; DeliveryFailed once the attempts are spent or on a refusal
        (another 4xx) that no retry would change."""
        last = ""
        for attempt in range(1, self.backoff.attempts + 1):
            # Signed per attempt: the timestamp is the attempt's, so a slow retry stays
            # inside the receiver's tolerance.
            headers = signed_headers(
                self.secret,
                int(self.clock()),
                body,
                event_id=event_id,
                event_type=event_type,
            )
            try:
                async with self.session.post(
                    self.url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as response:
                    if 200 <= response.status < 300:
                        return
                    last = f"HTTP {response.status}"
                    if response.status not in RETRYABLE:
                        raise DeliveryFailed(f"{self.url} refused event {event_id}: {last}")
            except (aiohttp.ClientError, TimeoutError) as error:
                last = f"{type(error).__name__}: {error}"
            if attempt < self.backoff.attempts:
                log.warning("webhook for %s failed (%s); retrying", event_id, last)
                await asyncio.sleep(self.backoff.delay(attempt))
        raise DeliveryFailed(f"{self.url} did not take event {event_id}: {last}")
