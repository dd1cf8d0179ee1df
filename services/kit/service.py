"""Assembling and running one service process from its settings.

Every service has the same shape: settings, JSON logs, telemetry, its own database with
migrations applied at start, Redis as an accelerator, token verification and the gRPC
server. Only the servicers differ, handed in as `register`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from services.kit.auth import TokenVerifier
from services.kit.cache import ResilientRedis
from services.kit.database import Database
from services.kit.migrations import migrate
from services.kit.server import GrpcServer, Lifecycle, PortInUse
from services.kit.settings import ServiceSettings, env_name
from services.kit.telemetry import MetricsPortInUse, Telemetry, setup_telemetry

log = logging.getLogger(__name__)


@dataclass
class Dependencies:
    """What a service's handlers are built from."""

    settings: ServiceSettings
    database: Database
    redis: ResilientRedis
    verifier: TokenVerifier
    # Started after migrations succeed, cancelled at shutdown (relays, consumers, sweepers).
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Run after calls have drained, before the database closes.
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    migrations: Path
    service_names: Sequence[str]
    register: Callable[[grpc.aio.Server, Dependencies], None]


def build_dependencies(settings: ServiceSettings) -> Dependencies:
    return Dependencies(
        settings=settings,
        database=Database(
            settings.effective_database_url(),
            tls_mode=settings.database_tls,
            tls_root_cert=settings.database_tls_root_cert,
        ),
        redis=ResilientRedis(settings.redis_url),
        verifier=TokenVerifier(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            algorithms=settings.algorithms,
            key_file=None if settings.auth_jwks_url else settings.effective_key_file(),
            jwks_url=settings.auth_jwks_url,
        ),
    )


def build_server(spec: ServiceSpec, deps: Dependencies) -> GrpcServer:
    settings = deps.settings

    async def start() -> None:
        await migrate(deps.database, spec.migrations, service=spec.name)

    async def stop() -> None:
        for hook in deps.on_stop:
            await hook()
        await deps.redis.close()
        await deps.database.close()

    lifecycle = Lifecycle(
        register=lambda server: spec.register(server, deps),
        service_names=spec.service_names,
        start=start,
        ready=deps.database.ping,
        stop=stop,
        extra_tasks=deps.background,
    )
    return GrpcServer(
        spec.name,
        lifecycle,
        deps.verifier,
        host=settings.grpc_host,
        port=settings.effective_grpc_port(),
        grace_seconds=settings.shutdown_grace_seconds,
    )


def run(spec: ServiceSpec, settings: ServiceSettings) -> None:
    """Entry point of a service process; returns when it has stopped."""
    from services.kit.logs import setup_logging

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
        server = build_server(spec, build_dependencies(settings))
        asyncio.run(server.run())
    except PortInUse as error:
        _die(f"{spec.name}: {error}; set {env_name(cls, 'grpc_port')} to a free port")
    finally:
        telemetry.shutdown()


def _die(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)
