"""Assembling and running one service process from its settings.

Every service has the same shape: settings, JSON logs, telemetry, its own database with
migrations applied at start, Redis as an accelerator, token verification and the gRPC
server; a producer adds its outbox relay, a consumer its durable consumers. Only the
servicers, the outbox table and the subscriptions differ, handed in through `ServiceSpec`.

A process runs in one of three modes: `serve` (the gRPC API, plus the relay and consumers
unless STUDYHALL_RELAY / STUDYHALL_CONSUMERS say `external`), `relay` or `consume`. Every
mode serves gRPC health and Prometheus metrics on the service's ports, so relays and
consumers are probed and scraped like the API (on one host, give each process its own ports).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import Table

from services.kit.auth import TokenVerifier
from services.kit.cache import ResilientRedis
from services.kit.database import Database
from services.kit.events.consumer import Consumer, Subscription
from services.kit.events.relay import Relay
from services.kit.migrations import migrate
from services.kit.ratelimit import RateLimits, parse_limits
from services.kit.schedule import Handler, Scheduler
from services.kit.server import GrpcServer, Lifecycle, PortInUse
from services.kit.settings import ServiceSettings, env_name
from services.kit.telemetry import MetricsPortInUse, Telemetry, setup_telemetry

log = logging.getLogger(__name__)

Worker = Callable[[], Coroutine[Any, Any, None]]
MODES = ("serve", "relay", "consume")


@dataclass
class Dependencies:
    """What a service's handlers are built from."""

    settings: ServiceSettings
    database: Database
    redis: ResilientRedis
    verifier: TokenVerifier
    relay: Relay | None = None
    consumers: list[Consumer] = field(default_factory=list)
    # Started after migrations succeed, cancelled at shutdown.
    background: list[Worker] = field(default_factory=list)
    scheduler: Scheduler | None = None

    def notify_outbox(self) -> None:
        """Tell an in-process relay that new outbox rows were committed."""
        if self.relay is not None:
            self.relay.notify()


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    migrations: Path
    service_names: Sequence[str]
    register: Callable[[grpc.aio.Server, Dependencies], None]
    outbox: Table | None = None
    inbox: Table | None = None
    # The durable consumers of the service, built per process from its dependencies, so a
    # consumer is handed what it shares with the handlers (a cache, the leaderboards).
    subscriptions: Callable[[Dependencies], Sequence[Subscription]] | None = None
    # Builds what the handlers and the subscriptions share, in every mode (a `consume`
    # process registers no servicers but its subscriptions may need the same parts).
    prepare: Callable[[Dependencies], None] = lambda deps: None
    # Time-driven work (services/kit/schedule.py): the service's jobs table and the handler
    # of each kind of job, built per process; every serving replica runs the scheduler.
    schedule: Table | None = None
    jobs: Callable[[Dependencies], Mapping[str, Handler]] | None = None


def build_dependencies(spec: ServiceSpec, settings: ServiceSettings) -> Dependencies:
    database = Database(
        settings.effective_database_url(),
        tls_mode=settings.database_tls,
        tls_root_cert=settings.database_tls_root_cert,
    )
    deps = Dependencies(
        settings=settings,
        database=database,
        redis=ResilientRedis(settings.redis_url),
        verifier=TokenVerifier(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            algorithms=settings.algorithms,
            key_file=None if settings.auth_jwks_url else settings.effective_key_file(),
            jwks_url=settings.auth_jwks_url,
        ),
    )
    if spec.outbox is not None:
        deps.relay = Relay(
            database,
            spec.outbox,
            service=spec.name,
            nats_url=settings.nats_url,
            nats_auth=settings.nats_auth(),
            limits=settings.stream_limits(),
        )
    if spec.subscriptions is not None:
        assert spec.inbox is not None, f"{spec.name} consumes events but has no inbox table"
        deps.consumers = [
            Consumer(
                database,
                spec.inbox,
                subscription,
                nats_url=settings.nats_url,
                nats_auth=settings.nats_auth(),
                limits=settings.stream_limits(),
            )
            for subscription in spec.subscriptions(deps)
        ]
    if spec.schedule is not None and spec.jobs is not None:
        deps.scheduler = Scheduler(
            spec.name, database, spec.schedule, spec.jobs(deps), on_commit=deps.notify_outbox
        )
    spec.prepare(deps)
    return deps


def workers(deps: Dependencies, mode: str) -> list[Worker]:
    """The background loops a process of `mode` runs."""
    settings = deps.settings
    chosen: list[Worker] = []
    if deps.relay is not None and (
        mode == "relay" or (mode == "serve" and settings.relay == "embedded")
    ):
        chosen.append(deps.relay.run)
    if mode == "consume" or (mode == "serve" and settings.consumers == "embedded"):
        chosen.extend(consumer.run for consumer in deps.consumers)
    if mode == "serve" and deps.scheduler is not None:
        chosen.append(deps.scheduler.run)
    return chosen


def build_server(spec: ServiceSpec, deps: Dependencies) -> GrpcServer:
    settings = deps.settings

    async def start() -> None:
        await migrate(deps.database, spec.migrations, service=spec.name)

    async def stop() -> None:
        await deps.redis.close()
        await deps.database.close()

    rate_limits = RateLimits(
        deps.redis,
        spec.name,
        per_caller=parse_limits(settings.rate_limit_per_caller),
        per_community=parse_limits(settings.rate_limit_per_community),
    )
    lifecycle = Lifecycle(
        register=lambda server: spec.register(server, deps),
        service_names=spec.service_names,
        start=start,
        ready=deps.database.ping,
        stop=stop,
        extra_tasks=[*workers(deps, "serve"), *deps.background],
    )
    return GrpcServer(
        spec.name,
        lifecycle,
        deps.verifier,
        host=settings.grpc_host,
        port=settings.effective_grpc_port(),
        grace_seconds=settings.shutdown_grace_seconds,
        rate_limits=rate_limits,
    )


def build_worker_server(spec: ServiceSpec, deps: Dependencies, mode: str) -> GrpcServer:
    """A relay or consumer process: the same server, lifecycle and probes as the API, serving
    only health; ready while its database answers and its loops hold a NATS connection."""
    settings = deps.settings
    chosen = workers(deps, mode)
    if not chosen:
        raise SystemExit(f"{spec.name}: nothing to run in mode {mode!r}")
    loops: list[Relay | Consumer] = (
        [deps.relay] if mode == "relay" and deps.relay is not None else list(deps.consumers)
    )

    async def start() -> None:
        await migrate(deps.database, spec.migrations, service=spec.name)

    async def ready() -> bool:
        return all(loop.connected for loop in loops) and await deps.database.ping()

    async def stop() -> None:
        await deps.redis.close()
        await deps.database.close()

    lifecycle = Lifecycle(
        register=lambda server: None,
        service_names=[],
        start=start,
        ready=ready,
        stop=stop,
        extra_tasks=chosen,
    )
    return GrpcServer(
        f"{spec.name} {mode}",
        lifecycle,
        deps.verifier,
        host=settings.grpc_host,
        port=settings.effective_grpc_port(),
        grace_seconds=settings.shutdown_grace_seconds,
    )


def run(spec: ServiceSpec, settings: ServiceSettings, argv: Sequence[str] | None = None) -> None:
    """Entry point of a service process: `python -m services.<name> [serve|relay|consume]`."""
    from services.kit.logs import setup_logging

    arguments = list(sys.argv[1:] if argv is None else argv)
    mode = arguments[0] if arguments else "serve"
    if mode not in MODES:
        _die(f"{spec.name}: unknown mode {mode!r}; use one of {', '.join(MODES)}")
    setup_logging(spec.name, settings.log_level)
    cls = type(settings)
    try:
        telemetry: Telemetry = setup_telemetry(
            spec.name,
            metrics_host=settings.grpc_host,
            metrics_port=settings.effective_metrics_port(),
        )
    except MetricsPortInUse as error:
        _die(f"{spec.name}: {error}; set {env_name(cls, 'metrics_port')} to a free port")
    try:
        deps = build_dependencies(spec, settings)
        server = (
            build_server(spec, deps) if mode == "serve" else build_worker_server(spec, deps, mode)
        )
        asyncio.run(server.run())
        if server.crashed:
            raise SystemExit(1)
    except PortInUse as error:
        _die(f"{spec.name}: {error}; set {env_name(cls, 'grpc_port')} to a free port")
    finally:
        telemetry.shutdown()


def _die(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)
