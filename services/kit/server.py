"""The gRPC server every service runs: health, reflection, readiness, graceful stop.

Readiness (the empty service name, and each gRPC service's name) says whether the service can
do its work: it starts NOT_SERVING, turns SERVING once start-up (database, migrations) has
succeeded, and follows a periodic readiness check after that. Liveness (`liveness`) only says
the process answers. SIGTERM flips everything to NOT_SERVING, lets calls in flight finish
within the grace period, then runs the service's own stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.kit.auth import TokenVerifier
from services.kit.ratelimit import RateLimits
from services.kit.rpc import RpcInterceptor

log = logging.getLogger(__name__)

LIVENESS = "liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class PortInUse(Exception):
    pass


@dataclass
class Lifecycle:
    """What a service plugs into the server."""

    # Registers the servicers on the server.
    register: Callable[[grpc.aio.Server], None]
    # Full names of the gRPC services registered, for health and reflection.
    service_names: Sequence[str]
    # Connects to dependencies; retried with backoff until it succeeds.
    start: Callable[[], Awaitable[None]]
    # Whether the service can do its work right now (its own database answers).
    ready: Callable[[], Awaitable[bool]]
    # Releases resources after the last call has drained.
    stop: Callable[[], Awaitable[None]]
    readiness_interval: float = 2.0
    start_backoff_max: float = 10.0
    extra_tasks: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)


class GenericHandlersOnly(grpc.aio.Server):  # type: ignore[misc]
    """The server as the generated `add_*Servicer_to_server` functions see it: each adds a
    generic handler for its service and registers every method again one by one; only the
    generic handler is kept (decision 0012).

    For each call it takes in, grpc.aio waits on one pending request per registered method
    (`asyncio.wait` over all of them), so the members process, with about sixty methods,
    paid for sixty futures per call. The generic handlers answer the same calls."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[Any]) -> None:
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        pass  # served by the service's generic handler instead

    def add_insecure_port(self, address: str) -> int:
        return int(self._server.add_insecure_port(address))

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return int(self._server.add_secure_port(address, server_credentials))

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float | None) -> None:
        await self._server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (grpc.aio.Server's signature)
        return bool(await self._server.wait_for_termination(timeout))


class GrpcServer:
    def __init__(
        self,
        name: str,
        lifecycle: Lifecycle,
        verifier: TokenVerifier,
        *,
        host: str,
        port: int,
        grace_seconds: float,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.name = name
        self._rate_limits = rate_limits
        self.lifecycle = lifecycle
        self.grace_seconds = grace_seconds
        self.health = health.aio.HealthServicer()
        self._verifier = verifier
        self._address = f"{host}:{port}"
        self._stopping = asyncio.Event()
        self._started = False
        self.port = 0
        # Set when a worker ended unexpectedly: the process exits with an error.
        self.crashed = False

    @property
    def address(self) -> str:
        host = self._address.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT or `request_stop()`, then drain and stop."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self._stopping.wait()
        finally:
            await self.shutdown()

    async def start(self) -> None:
        # grpc.aio binds the server to the running loop, so it is made here, not earlier.
        self._server = grpc.aio.server(
            interceptors=[RpcInterceptor(self._verifier, self._rate_limits)],
            # A second process on the same port must fail, not share the port silently.
            options=[("grpc.so_reuseport", 0)],
        )
        registry = GenericHandlersOnly(self._server)
        self.lifecycle.register(registry)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, registry)
        names = [*self.lifecycle.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, registry)
        try:
            self.port = self._server.add_insecure_port(self._address)
        except RuntimeError as error:
            raise PortInUse(f"cannot listen on {self._address}: {error}") from None
        if self.port == 0:
            raise PortInUse(f"cannot listen on {self._address}: the port is taken")
        await self._set_readiness(NOT_SERVING)
        await self.health.set(LIVENESS, SERVING)
        await self._server.start()
        self._started = True
        log.info("%s listening on %s", self.name, self.address)
        self._tasks = [asyncio.create_task(self._start_then_watch(), name="readiness")]

    def request_stop(self) -> None:
        self._stopping.set()

    async def shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        log.info("%s stopping: draining calls for up to %.0fs", self.name, self.grace_seconds)
        await self.health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # A worker stuck in a cleanup (a broker that never answers a close) must not
            # keep the process from exiting: it gets the grace period, then is abandoned.
            _done, stuck = await asyncio.wait(self._tasks, timeout=self.grace_seconds)
            for task in stuck:
                log.warning(
                    "%s: %s did not stop in time; abandoning it", self.name, task.get_name()
                )
        await self._server.stop(self.grace_seconds)
        await self.lifecycle.stop()
        log.info("%s stopped", self.name)

    async def _start_then_watch(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.lifecycle.start()
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Dependencies may come up after us (Kubernetes starts pods in any order):
                # stay NOT_SERVING and keep trying instead of crash-looping.
                log.warning("%s cannot start yet, retrying in %.1fs: %s", self.name, delay, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.lifecycle.start_backoff_max)
        for extra in self.lifecycle.extra_tasks:
            task = asyncio.create_task(extra(), name=getattr(extra, "__qualname__", "worker"))
            task.add_done_callback(self._worker_ended)
            self._tasks.append(task)
        log.info("%s running", self.name)
        ready: bool | None = None
        while True:
            try:
                now_ready = await asyncio.wait_for(self.lifecycle.ready(), timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("%s readiness check failed: %s", self.name, error)
                now_ready = False
            if now_ready != ready:
                ready = now_ready
                await self._set_readiness(SERVING if ready else NOT_SERVING)
                log.info("%s is %s", self.name, "ready" if ready else "not ready")
            await asyncio.sleep(self.lifecycle.readiness_interval)

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        # Workers retry what can be retried themselves; one that ends has met a bug. Stopping
        # lets the supervisor restart a clean process instead of serving without it.
        if task.cancelled() or self._stopping.is_set():
            return
        error = task.exception()
        log.error("%s: %s ended unexpectedly; stopping", self.name, task.get_name(), exc_info=error)
        self.crashed = True
        self.request_stop()

    async def _set_readiness(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for name in ("", *self.lifecycle.service_names):
            await self.health.set(name, status)
