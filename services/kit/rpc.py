"""One server interceptor for every RPC: identity, deadline, span, RED metrics, error mapping.

A single wrapper per call keeps the per-RPC cost to one extra coroutine frame; stacking an
interceptor per concern would multiply it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_status import rpc_status
from opentelemetry import metrics, trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.kit import edge
from services.kit.auth import TokenVerifier, bind_identity, reset_identity
from services.kit.database import connection_lost
from services.kit.errors import (
    DeadlineExceeded,
    DomainError,
    Internal,
    Unauthenticated,
    Unavailable,
)
from services.kit.ratelimit import RateLimits, community_of
from services.kit.status import code_of, rich_status

log = logging.getLogger(__name__)

# Health and reflection must answer without a token: probes and tools carry none.
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class RpcInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, verifier: TokenVerifier, rate_limits: RateLimits | None = None) -> None:
        self._verifier = verifier
        self._limits = rate_limits if rate_limits is not None and rate_limits.enabled else None
        self._tracer = trace.get_tracer("studyhall.rpc")
        meter = metrics.get_meter("studyhall.rpc")
        # The current RPC semantic conventions: `rpc.server.call.duration` in seconds (the
        # deprecated `rpc.server.duration` was in milliseconds), with the buckets they advise.
        self._duration = meter.create_histogram(
            "rpc.server.call.duration",
            unit="s",
            description="Duration of RPCs handled, by method and status code.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        # grpc.aio asks the interceptor for every call; the wrapped handler of a method (its
        # labels, its request type) is the same each time, so it is built once.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        wrapped = self._wrapped.get(details.method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(details)
        if handler is None or details.method.startswith(EXEMPT_PREFIXES):
            return handler
        if handler.unary_unary is None:
            # Streaming RPCs are not used by the services; refuse rather than skip auth.
            raise RuntimeError(f"{details.method}: only unary RPCs are supported")
        # The request arrives as bytes and is parsed inside the wrapper, so a malformed one
        # is answered INVALID_ARGUMENT like any other bad request (not UNKNOWN).
        request_type = handler.request_deserializer.__self__
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._wrap(details.method, handler.unary_unary, request_type),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[details.method] = wrapped
        return wrapped

    def _wrap(self, method: str, behavior: Behavior, request_type: type[Message]) -> Behavior:
        # `rpc.method` is fully qualified (`package.Service/Method`); `rpc.service` and
        # `rpc.system` are deprecated, and so is the numeric `rpc.grpc.status_code`: the code
        # is `rpc.response.status_code`, by name, and server faults add `error.type`.
        labels_ok = {"rpc.system.name": "grpc", "rpc.method": method[1:]}
        # The duration's labels, one dict per status code, built once rather than per call.
        labels_by_code = {code: _code_labels(labels_ok, code) for code in grpc.StatusCode}

        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            metadata = context.invocation_metadata() or ()
            carrier = {item.key: item.value for item in metadata}
            code = grpc.StatusCode.OK
            failure: DomainError | None = None
            with self._tracer.start_as_current_span(
                method[1:],
                context=extract(carrier),
                kind=SpanKind.SERVER,
                attributes=labels_ok,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                identity_token = None
                try:
                    identity = await self._verifier.verify(_bearer(carrier))
                    identity_token = bind_identity(identity)
                    span.set_attribute("enduser.id", identity.user_id)
                    remaining = context.time_remaining()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError
                    try:
                        request = edge.parse(request_type, raw)
                        edge.check(request)
                    except DomainError:
                        # A malformed call counts against its caller too: a flood of them
                        # is held back like any other.
                        if self._limits is not None:
                            await self._limits.admit(identity.user_id)
                        raise
                    if self._limits is not None:
                        # The caller's limits and those of the community the call names, in
                        # one Redis round trip.
                        await self._limits.admit(identity.user_id, community_of(request))
                    async with asyncio.timeout(remaining):
                        return await behavior(request, context)
                except DomainError as error:
                    failure = error
                except TimeoutError:
                    failure = DeadlineExceeded("the deadline passed before the call finished")
                except asyncio.CancelledError:
                    code = grpc.StatusCode.CANCELLED
                    raise
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except Exception as error:
                    if connection_lost(error):
                        log.warning("%s lost its database connection: %r", method, error)
                        failure = Unavailable("the database connection was lost; retry the call")
                    else:
                        reference = _error_reference(span)
                        log.exception(
                            "unhandled error in %s", method, extra={"error_reference": reference}
                        )
                        failure = Internal(f"internal error; quote {reference} when reporting it")
                finally:
                    if identity_token is not None:
                        reset_identity(identity_token)
                    if failure is not None:
                        code = code_of(failure)
                    labels = labels_by_code[code]
                    span.set_attribute("rpc.response.status_code", code.name)
                    if code in SERVER_ERRORS:
                        span.set_attribute("error.type", code.name)
                        span.set_status(Status(StatusCode.ERROR, code.name))
                    self._duration.record(time.perf_counter() - started, labels)
                assert failure is not None
                status = rpc_status.to_status(rich_status(failure))
                await context.abort(status.code, status.details, status.trailing_metadata)

        return handle


# The codes the gRPC semantic conventions count as the server's fault: they mark the server
# span as failed and set `error.type`. The others (NOT_FOUND, INVALID_ARGUMENT, CANCELLED...)
# are the caller's to fix or the caller's choice.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

# What the semantic conventions advise for `rpc.server.call.duration`, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _code_labels(labels_ok: dict[str, str], code: grpc.StatusCode) -> dict[str, str]:
    if code in SERVER_ERRORS:
        return {**labels_ok, "rpc.response.status_code": code.name, "error.type": code.name}
    return {**labels_ok, "rpc.response.status_code": code.name}


def _error_reference(span: trace.Span) -> str:
    context = span.get_span_context()
    if context.is_valid:
        return f"trace id {context.trace_id:032x}"
    # Without tracing there is no trace id to quote; the log line carries this one instead.
    return f"error id {uuid.uuid4().hex}"


def _bearer(metadata: dict[str, Any]) -> str:
    value = metadata.get("authorization")
    if not value:
        raise Unauthenticated("this call needs 'authorization: Bearer <token>' metadata")
    scheme, _, token = str(value).partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
    return token.strip()
