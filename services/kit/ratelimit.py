"""Rate limits per caller and per community, kept in Redis as moving windows.

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


# Moving windows for every limit of a call at once: each key is a list of the window's call
# times, newest first. Nothing is counted unless every limit admits the call, so a call held
# back by one limit uses up no other. Returns {0} when admitted, else {i, oldest time} for
# the first limit (1-based) that refuses; the time as text, since Redis would truncate it.
_ADMIT = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[2 * i])
    local expiry = tonumber(ARGV[2 * i + 1])
    local entry = redis.call('lindex', key, amount - 1)
    if entry and tonumber(entry) >= now - expiry then
        return {i, entry}
    end
end
for i, key in ipairs(KEYS) do
    redis.call('lpush', key, ARGV[1])
    redis.call('ltrim', key, 0, tonumber(ARGV[2 * i]) - 1)
    redis.call('expire', key, tonumber(ARGV[2 * i + 1]))
end
return {0}
"""


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
        self._prefix = f"studyhall:{service}:rate:"
        self._script = redis.client.register_script(_ADMIT)
        self._refused = metrics.get_meter("studyhall.ratelimit").create_counter(
            "studyhall.rate_limit.refused_calls",
            description="Calls refused with RESOURCE_EXHAUSTED, by the limit they hit.",
        )
        for scope in ("caller", "community"):
            self._refused.add(0, {"limit": scope})

    @property
    def enabled(self) -> bool:
        return bool(self.caller.limits or self.community.limits)

    async def admit(self, user_id: str, community_id: str = "") -> None:
        """Count a call of `user_id` in `community_id` ("" for none) against every limit
        that applies, in one Redis round trip; RESOURCE_EXHAUSTED when one refuses it."""
        checks = [(self.caller, user_id, limit) for limit in self.caller.limits]
        if community_id:
            checks += [(self.community, community_id, limit) for limit in self.community.limits]
        if not checks:
            return
        now = time.time()
        keys = [self._prefix + limit.key_for(scope.name, who) for scope, who, limit in checks]
        args: list[float | int] = [now]
        for _, _, limit in checks:
            args += [limit.amount, limit.get_expiry()]

        async def run(_client: object) -> list[Any]:
            return list(await self._script(keys=keys, args=args))

        # Redis down: admitted, and counted by ResilientRedis as a degraded call.
        answer = await self.redis.call(run, [0])
        refused_by = int(answer[0])
        if not refused_by:
            return
        scope, who, limit = checks[refused_by - 1]
        self._refused.add(1, {"limit": scope.name})
        oldest = float(answer[1])
        raise ResourceExhausted(
            f"too many calls for this {scope.name} ({limit.amount} per "
            f"{_window(limit)}); retry after the delay given",
            retry_after=max(oldest + limit.get_expiry() - time.time(), MIN_RETRY_SECONDS),
            subject=f"{scope.name}:{who}",
            limit=f"{limit.amount} per {_window(limit)}",
        )


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
