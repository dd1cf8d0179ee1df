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
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")


class ResilientRedis:
    def __init__(
        self, url: str, *, timeout_seconds: float = 0.5, cooldown_seconds: float = 5.0
    ) -> None:
        self.url = url
        self.client: aioredis.Redis = TracedRedis.from_url(
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


_TRACER = trace.get_tracer("studyhall.cache")


def _attributes(client: aioredis.Redis, operation: str) -> dict[str, Any]:
    """The current database semantic conventions for Redis; never a key or a value (keys name
    communities and users)."""
    kwargs = client.connection_pool.connection_kwargs
    attributes: dict[str, Any] = {
        "db.system.name": "redis",
        "db.operation.name": operation,
        "db.namespace": str(kwargs.get("db", 0)),
    }
    if "host" in kwargs:
        attributes["server.address"] = kwargs["host"]
        attributes["server.port"] = kwargs.get("port", 6379)
    return attributes


class _Traced:
    """A CLIENT span around a Redis round trip, as a child of the current span; none outside
    a span (a background loop's call would start an orphan trace)."""

    def __init__(self, client: aioredis.Redis, operation: str, batch: int = 0) -> None:
        self._span: trace.Span | None = None
        if trace.get_current_span().is_recording():
            attributes = _attributes(client, operation)
            if batch:
                attributes["db.operation.batch.size"] = batch
            self._span = _TRACER.start_span(operation, kind=SpanKind.CLIENT, attributes=attributes)

    def __enter__(self) -> _Traced:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: object, _tb: object) -> None:
        if self._span is None:
            return
        if kind is not None:
            self._span.set_attribute("error.type", kind.__qualname__)
            self._span.set_status(Status(StatusCode.ERROR, kind.__qualname__))
        self._span.end()


class TracedRedis(aioredis.Redis):
    """redis-py's client with a span per command and per pipeline, for every client on its
    connection pool (the rate limiter's too): a command's span is opened where it is sent
    and closed with its reply, on the connection; a pipeline's around the whole batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pool = self.connection_pool
        if not getattr(pool.connection_class, "traced", False):
            pool.connection_class = _traced_connection(pool.connection_class)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _TracedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class _TracedPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        batched = self.is_transaction or self.explicit_transaction
        with _Traced(self, "MULTI" if batched else "PIPELINE", len(self.command_stack)):
            return await super().execute(raise_on_error)


def _traced_connection(base: type[Any]) -> type[Any]:
    """`base` (TCP, TLS or Unix socket) with a span from a command's send to its reply."""

    class TracedConnection(base):  # type: ignore[misc]
        traced = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Commands sent and not yet answered, oldest first: replies come in sending order.
            self._pending: list[trace.Span | None] = []
            self._db_attributes = {
                "db.system.name": "redis",
                "db.namespace": str(kwargs.get("db", 0)),
                **(
                    {"server.address": kwargs["host"], "server.port": kwargs.get("port", 6379)}
                    if "host" in kwargs
                    else {}
                ),
            }

        async def send_command(self, *args: Any, **kwargs: Any) -> None:
            span = None
            if trace.get_current_span().is_recording():
                name = _command_name(args)
                span = _TRACER.start_span(
                    name,
                    kind=SpanKind.CLIENT,
                    attributes={**self._db_attributes, "db.operation.name": name},
                )
            try:
                await super().send_command(*args, **kwargs)
            except BaseException as error:
                _end(span, error)
                raise
            # Queued once sent: a health-check PING sent and answered inside this send (the
            # connection's own, before the command) comes and goes before it.
            self._pending.append(span)

        async def disconnect(self, *args: Any, **kwargs: Any) -> None:
            # A command cut off (a timeout, a cancelled call) gets no reply on a new socket.
            while self._pending:
                _end(self._pending.pop(), ConnectionError("disconnected"))
            await super().disconnect(*args, **kwargs)

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            span = self._pending.pop(0) if self._pending else None
            try:
                response = await super().read_response(*args, **kwargs)
            except BaseException as error:
                _end(span, error)
                raise
            _end(span, response if isinstance(response, Exception) else None)
            return response

    return TracedConnection


def _command_name(args: tuple[Any, ...]) -> str:
    if not args:
        return "COMMAND"
    first = args[0]
    name = first.decode() if isinstance(first, bytes) else str(first)
    # redis-py passes multi-word commands as one argument ("SCRIPT LOAD") or as two.
    return name.upper()


def _end(span: trace.Span | None, error: BaseException | None) -> None:
    if span is None:
        return
    if error is not None:
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
    span.end()
