"""Rate limits per caller and per community, kept in Redis with the `limits` library.

Every authenticated call of a service counts against its caller's limits; a call that names
a community counts against that community's limits too (on each service apart: keys carry
the service's name). A call over a limit is RESOURCE_EXHAUSTED with the delay after which
it would be admitted (`google.rpc.RetryInfo`) and which limit it hit
(`google.rpc.QuotaFailure`). Moving windows: a caller gets at most N calls in any window of
the limit's length, without the double bursts of fixed windows at their edges.

Redis accelerates and never holds the record (DESIGN.md rule 10): while it is unreachable
every call is admitted, and counted in `studyhall.redis.degraded_calls` like every other
fallback (alert StudyhallRedisDegraded). Refusals are counted in
`studyhall.rate_limit.refused_calls` by which limit refused them
(docs/decisions/0022-rate-limits.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from opentelemetry import metrics

from services.kit.cache import ResilientRedis
from services.kit.errors import ResourceExhausted

# The shortest delay a refusal asks for: a window that frees a slot in under a millisecond
# still needs a retry to be later than now.
MIN_RETRY_SECONDS = 0.001


def parse_limits(text: str) -> list[RateLimitItem]:
    """`50/second;1500/minute` as limits; an empty text is none. ValueError when malformed."""
    if not text.strip():
        return []
    return list(parse_many(text))


@dataclass(frozen=True)
class Scope:
    """What a set of limits counts: every call of a caller, or every call in a community."""

    name: str  # "caller" or "community": the refusal's subject and the metric's label
    limits: Sequence[RateLimitItem]


class RateLimits:
    """The limits of one service's calls, checked before any handler runs."""

    def __init__(
        self,
        redis: ResilientRedis,
        service: str,
        *,
        per_caller: Sequence[RateLimitItem],
        per_community: Sequence[RateLimitItem],
    ) -> None:
        self.redis = redis
        self.caller = Scope("caller", per_caller)
        self.community = Scope("community", per_community)
        # The service's own Redis connections; keys under studyhall:<service>:rate.
        shared: dict[str, Any] = {"connection_pool": redis.client.connection_pool}
        storage = RedisStorage(
            redis.url.replace("redis", "async+redis", 1),
            implementation="redispy",
            key_prefix=f"studyhall:{service}:rate",
            **shared,
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._refused = metrics.get_meter("studyhall.ratelimit").create_counter(
            "studyhall.rate_limit.refused_calls",
            description="Calls refused with RESOURCE_EXHAUSTED, by the limit they hit.",
        )
        for scope in ("caller", "community"):
            self._refused.add(0, {"limit": scope})

    @property
    def enabled(self) -> bool:
        return bool(self.caller.limits or self.community.limits)

    async def admit_caller(self, user_id: str) -> None:
        """Count a call of `user_id`; RESOURCE_EXHAUSTED when it is over a caller limit."""
        await self._admit(self.caller, user_id)

    async def admit_community(self, community_id: str) -> None:
        """Count a call in `community_id`; RESOURCE_EXHAUSTED when it is over a limit."""
        if community_id:
            await self._admit(self.community, community_id)

    async def _admit(self, scope: Scope, identifier: str) -> None:
        for limit in scope.limits:

            async def hit(_client: object, limit: RateLimitItem = limit) -> bool:
                return await self._limiter.hit(limit, scope.name, identifier)

            # Redis down: admitted, and counted by ResilientRedis as a degraded call.
            if await self.redis.call(hit, True):
                continue
            self._refused.add(1, {"limit": scope.name})
            raise ResourceExhausted(
                f"too many calls for this {scope.name} ({limit.amount} per "
                f"{_window(limit)}); retry after the delay given",
                retry_after=await self._retry_after(limit, scope.name, identifier),
                subject=f"{scope.name}:{identifier}",
                limit=f"{limit.amount} per {_window(limit)}",
            )

    async def _retry_after(self, limit: RateLimitItem, *identifiers: str) -> float:
        """Seconds until the oldest call in the window leaves it, freeing a slot."""
        fallback = (time.time(), 0)
        stats = await self.redis.call(
            lambda _client: self._limiter.get_window_stats(limit, *identifiers), fallback
        )
        return max(float(stats[0]) - time.time(), MIN_RETRY_SECONDS)


# Where each request type names its community: a path of field names, decided once per type.
_COMMUNITY_PATHS: dict[str, tuple[str, ...]] = {}


def community_of(request: Message) -> str:
    """The community a request acts in ("" when it names none): its `community_id`, else
    that of the record it carries (`settings.community_id`, `segment.community_id`), else
    the `id` of the community it carries (UpdateCommunity's `community.id`)."""
    descriptor = request.DESCRIPTOR
    path = _COMMUNITY_PATHS.get(descriptor.full_name)
    if path is None:
        path = _community_path(descriptor)
        _COMMUNITY_PATHS[descriptor.full_name] = path
    value: Any = request
    for name in path:
        value = getattr(value, name)
    return value if path and isinstance(value, str) else ""


def _community_path(descriptor: Any) -> tuple[str, ...]:
    fields = descriptor.fields_by_name
    if "community_id" in fields:
        return ("community_id",)
    for field in descriptor.fields:
        kind = field.message_type
        if kind is None or field.is_repeated:
            continue
        if "community_id" in kind.fields_by_name:
            return (field.name, "community_id")
        if field.name == "community" and "id" in kind.fields_by_name:
            return (field.name, "id")
    return ()


def _window(limit: RateLimitItem) -> str:
    unit = limit.GRANULARITY.name
    return unit if limit.multiples == 1 else f"{limit.multiples} {unit}s"
