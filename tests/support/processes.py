"""A service as its own OS process, for tests that kill one or run two replicas: started with
`python -m services.<name>` on free ports, SERVING before the test goes on, killed at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.services import free_port


def inherited_environment(*, telemetry: bool = True) -> dict[str, str]:
    """This process's environment for a process it starts: without the run's own Studyhall
    settings, but for the streams' replicas (three on a test cluster); without OTEL_*
    variables too unless `telemetry` (a test may set them for the process it starts)."""
    dropped = ("STUDYHALL_",) if telemetry else ("STUDYHALL_", "OTEL_")
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(dropped) or key == "STUDYHALL_STREAM_REPLICAS"
    }


@contextmanager
def service_process(
    service: str,
    data_dir: Path,
    database_url: str,
    redis_url: str,
    nats_url: str,
    **settings: str,
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The process and its gRPC port; `settings` are further STUDYHALL_<SERVICE>_ values
    (other variables, OTEL_* say, come from this process's environment)."""
    with replicas(1, service, data_dir, database_url, redis_url, nats_url, **settings) as [one]:
        yield one


@contextmanager
def replicas(
    count: int,
    service: str,
    data_dir: Path,
    database_url: str,
    redis_url: str,
    nats_url: str,
    **settings: str,
) -> Iterator[list[tuple[subprocess.Popen[str], int]]]:
    """`count` processes on one database, started together (a start is mostly imports)."""
    started: list[tuple[subprocess.Popen[str], int]] = []
    try:
        for _ in range(count):
            port = free_port()
            environment = _environment(service, port, data_dir, database_url, redis_url, nats_url)
            environment.update(
                {f"STUDYHALL_{service.upper()}_{k.upper()}": v for k, v in settings.items()}
            )
            process = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            started.append((process, port))
        for process, port in started:
            _wait_serving(service, port, process)
        yield started
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def _environment(
    service: str, port: int, data_dir: Path, database_url: str, redis_url: str, nats_url: str
) -> dict[str, str]:
    env = inherited_environment()
    prefix = f"STUDYHALL_{service.upper()}_"
    env.update(
        {
            "STUDYHALL_DATA_DIR": str(data_dir),
            "STUDYHALL_REDIS_URL": redis_url,
            "STUDYHALL_NATS_URL": nats_url,
            f"{prefix}DATABASE_URL": database_url,
            f"{prefix}GRPC_PORT": str(port),
            f"{prefix}METRICS_PORT": str(free_port()),
            # Off, as for the services tests run in-process (tests/support/services.py): a
            # test's bursts by one caller are not what it checks; limits have tests of their own.
            "STUDYHALL_RATE_LIMIT_PER_CALLER": "",
            "STUDYHALL_RATE_LIMIT_PER_COMMUNITY": "",
        }
    )
    return env


def _wait_serving(service: str, port: int, process: subprocess.Popen[str]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            assert process.poll() is None, f"the {service} process exited"
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"{service} never became SERVING")
