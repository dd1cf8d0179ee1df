"""One timeout type from nats-py's pull fetch, so faststream never drops a fetched batch.

faststream's batch pull loop fetches until the batch is full or its wait is over, and stops
on `nats.errors.TimeoutError`. nats-py (2.15 and later) also raises the plain
`asyncio.TimeoutError` from `fetch` when the time left for a follow-up fetch runs out before
the server has answered. That one escapes faststream's loop: the task restarts and the
messages already fetched for the batch are never handed over, so JetStream delivers them
again only after `ack_wait` (30 s by default). On a busy machine this happens often.

`nats.errors.TimeoutError` subclasses `asyncio.TimeoutError`, so turning the one into the
other changes nothing for code that catches either; faststream then ends the batch early and
hands over what it has. Applied once, by `subscribe`.
"""

from __future__ import annotations

import functools
from typing import Any

from nats.errors import TimeoutError as NatsTimeout
from nats.js.client import JetStreamContext

_MARK = "_studyhall_one_timeout_type"


def raise_nats_timeouts_from_fetch() -> None:
    pull = JetStreamContext.PullSubscription
    original = pull.fetch
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    async def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except NatsTimeout:
            raise
        except TimeoutError as timeout:
            raise NatsTimeout from timeout

    setattr(fetch, _MARK, True)
    pull.fetch = fetch  # type: ignore[method-assign]
