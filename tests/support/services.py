"""Running a service in-process for service tests: its real server, real database, real
Redis, reached over a real gRPC channel on a free port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.auth import LocalSigner
from services.kit.server import GrpcServer
from services.kit.service import Dependencies, ServiceSpec, build_dependencies, build_server
from services.kit.settings import ServiceSettings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningService:
    channel: grpc.aio.Channel
    server: GrpcServer
    deps: Dependencies
    signer: LocalSigner
    # Other services this one calls, started with it for the tests (catalogue.Peer).
    peers: dict[str, RunningService] = field(default_factory=dict)

    def auth(self, user_id: str, *, operator: bool = False) -> list[tuple[str, str]]:
        """Call metadata that authenticates as `user_id`."""
        return [("authorization", "Bearer " + self.signer.mint(user_id, operator=operator))]


@asynccontextmanager
async def running_service(
    spec: ServiceSpec,
    settings_cls: type[ServiceSettings],
    *,
    database_url: str,
    redis_url: str,
    nats_url: str,
    data_dir: Path,
    **overrides: Any,
) -> AsyncIterator[RunningService]:
    signer = LocalSigner.ensure(data_dir)
    # The whole run shares one Redis and reuses user names from test to test: limits would
    # refuse calls of unrelated tests. Tests of the limits set them (test_rate_limits.py).
    overrides.setdefault("rate_limit_per_caller", "")
    overrides.setdefault("rate_limit_per_community", "")
    settings = settings_cls(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        nats_url=nats_url,
        grpc_port=free_port(),
        shutdown_grace_seconds=2.0,
        **overrides,
    )
    deps = build_dependencies(spec, settings)
    server = build_server(spec, deps)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        await wait_until_serving(channel)
        yield RunningService(channel, server, deps, signer)
    finally:
        await channel.close()
        await server.shutdown()


async def wait_until_serving(channel: grpc.aio.Channel, *, timeout: float = 30.0) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("service did not become SERVING")
        await asyncio.sleep(0.05)
