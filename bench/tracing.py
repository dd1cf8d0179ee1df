"""What tracing costs: the same light RPC (a read served from memory, no database) with
tracing off and with tracing on (sampling 1.0, batch span processor, an exporter that drops
spans), measured in one invocation. Prints the throughput ratio on/off.

    make bench-tracing            # BENCH_ARGS="--seconds 10 --concurrency 64"

The server runs in a subprocess per mode (a process can install its tracer provider once);
the load comes from this process over a real gRPC channel.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from services.kit.auth import LocalSigner, TokenVerifier
from services.kit.server import GrpcServer, Lifecycle
from studyhall.members.v1 import members_service_pb2 as pb

SERVICE = "studyhall.bench.v1.EchoService"
METHOD = f"/{SERVICE}/Whoami"


class _DroppingExporter:
    """Receives every finished span and keeps none: the export path without the network."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


async def _serve(port: int, tracing: bool, data_dir: Path) -> None:
    if tracing:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        provider = TracerProvider(sampler=ALWAYS_ON)
        provider.add_span_processor(BatchSpanProcessor(_DroppingExporter()))  # type: ignore[arg-type]
        trace.set_tracer_provider(provider)
    from services.kit.auth import current_identity

    async def whoami(request: pb.GetCommunityRequest, context: Any) -> pb.Community:
        return pb.Community(owner_user_id=current_identity().user_id, id=request.community_id)

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            whoami,
            request_deserializer=pb.GetCommunityRequest.FromString,
            response_serializer=pb.Community.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE, {"Whoami": handler})]
        )

    async def nothing() -> None:
        pass

    async def ready() -> bool:
        return True

    verifier = TokenVerifier(
        issuer="studyhall-local",
        audience="studyhall",
        algorithms=["ES256"],
        key_file=data_dir / "keys" / "signing.jwks.json",
    )
    lifecycle = Lifecycle(register, [SERVICE], nothing, ready, nothing)
    server = GrpcServer("bench", lifecycle, verifier, host="127.0.0.1", port=port, grace_seconds=1)
    await server.run()


async def _load(
    port: int, token: str, seconds: float, concurrency: int
) -> tuple[float, list[float]]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary(
        METHOD,
        request_serializer=pb.GetCommunityRequest.SerializeToString,
        response_deserializer=pb.Community.FromString,
    )
    metadata = (("authorization", f"Bearer {token}"),)
    # The kit checks a request at the edge: the id must be a well-formed UUID.
    request = pb.GetCommunityRequest(community_id="5f0c6a8e-2b1d-4c3e-9a7f-1d2e3f4a5b6c")
    for _ in range(200):  # warm up: connections, caches, the JIT-less but cold paths
        await call(request, metadata=metadata)
    latencies: list[float] = []
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call(request, metadata=metadata)
            latencies.append(time.perf_counter() - started)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await channel.close()
    return done / elapsed, latencies


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _measure(
    tracing: bool, data_dir: Path, token: str, seconds: float, concurrency: int
) -> tuple[float, list[float]]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.tracing", "--serve", str(port), "--data-dir", str(data_dir)]
        + (["--tracing"] if tracing else []),
        env={**os.environ, "STUDYHALL_LOG_LEVEL": "WARNING"},
    )
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        return asyncio.run(_load(port, token, seconds, concurrency))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating off/on rounds")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tracing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.tracing, args.data_dir))
        return
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch)
        token = LocalSigner.ensure(data_dir).mint("bench", ttl_seconds=3600)
        rates: dict[bool, list[float]] = {False: [], True: []}
        p99: dict[bool, list[float]] = {False: [], True: []}
        # Alternating rounds spread the machine's drift over both modes.
        for _ in range(args.rounds):
            for tracing in (False, True):
                rate, latencies = _measure(tracing, data_dir, token, args.seconds, args.concurrency)
                rates[tracing].append(rate)
                p99[tracing].append(statistics.quantiles(latencies, n=100)[98] * 1000)
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}"
    )
    shape = f"{args.concurrency} concurrent calls, {args.seconds:.0f}s x {args.rounds} rounds"
    print(f"light RPC, {shape}")
    print(f"tracing off: {off:8.0f} calls/s   p99 {statistics.median(p99[False]):6.2f} ms")
    print(f"tracing on:  {on:8.0f} calls/s   p99 {statistics.median(p99[True]):6.2f} ms")
    print(f"ratio on/off: {on / off:.2f}   (target >= 0.80)")


if __name__ == "__main__":
    main()
