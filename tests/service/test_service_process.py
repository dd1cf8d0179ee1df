"""A service process: a bad setting stops it at once naming the variable; SIGTERM stops it
cleanly; a taken port is reported with the setting to change."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.auth import LocalSigner
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.support.otlp import otlp_receiver
from tests.support.services import free_port

pytestmark = pytest.mark.service


def _env(data_dir: Path, redis_url: str, nats_url: str, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STUDYHALL_")}
    env.update(
        STUDYHALL_DATA_DIR=str(data_dir),
        STUDYHALL_REDIS_URL=redis_url,
        STUDYHALL_NATS_URL=nats_url,
        STUDYHALL_MEMBERS_GRPC_PORT=str(free_port()),
        STUDYHALL_MEMBERS_METRICS_PORT=str(free_port()),
    )
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STUDYHALL_MEMBERS_GRPC_PORT", "fifty"),
        ("STUDYHALL_MEMBERS_DATABASE_URL", "mysql://root@localhost/x"),
        ("STUDYHALL_AUTH_ALGORITHMS", "none"),
        ("STUDYHALL_LOG_LEVEL", "LOUD"),
        ("STUDYHALL_RATE_LIMIT_PER_CALLER", "lots"),
    ],
)
def test_bad_setting_stops_the_process_with_one_line_naming_it(
    data_dir: Path, variable: str, value: str
) -> None:
    env = _env(data_dir, "redis://127.0.0.1:1/0", "nats://127.0.0.1:1", **{variable: value})
    result = subprocess.run(
        [sys.executable, "-m", "services.members"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert not (data_dir / "members.db").exists()


def _wait_serving(port: int, process: subprocess.Popen[str]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise AssertionError("members never became SERVING")


def test_sigterm_stops_the_service_cleanly(data_dir: Path, redis_url: str, nats_url: str) -> None:
    LocalSigner.ensure(data_dir)
    env = _env(data_dir, redis_url, nats_url)
    port = int(env["STUDYHALL_MEMBERS_GRPC_PORT"])
    process = subprocess.Popen(
        [sys.executable, "-m", "services.members"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_serving(port, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        log = process.stderr.read()
        assert '"message": "members stopped"' in log
    finally:
        if process.poll() is None:
            process.kill()


def test_metrics_and_traces_leave_the_process_over_prometheus_and_otlp(
    data_dir: Path, redis_url: str, nats_url: str
) -> None:
    signer = LocalSigner.ensure(data_dir)
    with otlp_receiver() as receiver:
        env = _env(
            data_dir,
            redis_url,
            nats_url,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_METRIC_EXPORT_INTERVAL="300",
        )
        port = int(env["STUDYHALL_MEMBERS_GRPC_PORT"])
        process = subprocess.Popen(
            [sys.executable, "-m", "services.members"], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            _wait_serving(port, process)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = members_grpc.MembersServiceStub(channel)
                with pytest.raises(grpc.RpcError):
                    stub.GetCommunity(
                        members_pb.GetCommunityRequest(community_id=str(uuid.uuid4())),
                        metadata=[("authorization", "Bearer " + signer.mint("ana"))],
                        timeout=5,
                    )
            scrape = (
                urllib.request.urlopen(
                    f"http://127.0.0.1:{env['STUDYHALL_MEMBERS_METRICS_PORT']}/metrics", timeout=5
                )
                .read()
                .decode()
            )
            # The current RPC semantic conventions: a fully-qualified method, the code by name.
            assert 'rpc_method="studyhall.members.v1.MembersService/GetCommunity"' in scrape
            assert 'rpc_response_status_code="NOT_FOUND"' in scrape
            assert "rpc_server_call_duration_seconds_bucket" in scrape
            # No per-community labels: tenants would multiply the series without bound.
            assert "community_id" not in scrape
            for _ in range(100):
                if "studyhall.members.v1.MembersService/GetCommunity" in receiver.span_names() and (
                    "rpc.server.call.duration" in receiver.metric_names
                ):
                    break
                time.sleep(0.1)
            span = next(s for s in receiver.spans if s.name.endswith("/GetCommunity"))
            assert span.service == "studyhall-members"
            assert span.attributes["rpc.response.status_code"] == "NOT_FOUND"
            assert span.attributes["rpc.system.name"] == "grpc"
            assert "rpc.grpc.status_code" not in span.attributes
            assert "rpc.server.call.duration" in receiver.metric_names
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_taken_port_is_reported_with_the_setting_to_change(
    data_dir: Path, redis_url: str, nats_url: str
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = _env(data_dir, redis_url, nats_url, STUDYHALL_MEMBERS_GRPC_PORT=str(port))
        result = subprocess.run(
            [sys.executable, "-m", "services.members"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert "STUDYHALL_MEMBERS_GRPC_PORT" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("service", "mode", "metric"),
    [
        ("members", "relay", "studyhall_outbox_backlog"),
        ("analytics", "consume", "studyhall_consumer_lag"),
    ],
)
def test_relay_and_consumer_processes_are_probed_and_scraped_like_the_api(
    data_dir: Path, redis_url: str, nats_url: str, service: str, mode: str, metric: str
) -> None:
    LocalSigner.ensure(data_dir)
    prefix = f"STUDYHALL_{service.upper()}_"
    env = _env(
        data_dir,
        redis_url,
        nats_url,
        **{prefix + "GRPC_PORT": str(free_port()), prefix + "METRICS_PORT": str(free_port())},
    )
    port = int(env[prefix + "GRPC_PORT"])
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}", mode],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_serving(port, process)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            liveness = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="liveness"), timeout=5
            )
        assert liveness.status == health_pb2.HealthCheckResponse.SERVING
        scrape = ""
        for _ in range(50):
            url = f"http://127.0.0.1:{env[prefix + 'METRICS_PORT']}/metrics"
            scrape = urllib.request.urlopen(url, timeout=5).read().decode()
            if metric in scrape:
                break
            time.sleep(0.2)
        assert metric in scrape
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_a_relay_that_cannot_reach_nats_is_alive_but_not_ready(
    data_dir: Path, redis_url: str
) -> None:
    LocalSigner.ensure(data_dir)
    env = _env(data_dir, redis_url, f"nats://127.0.0.1:{free_port()}")
    port = int(env["STUDYHALL_MEMBERS_GRPC_PORT"])
    process = subprocess.Popen(
        [sys.executable, "-m", "services.members", "relay"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            statuses: dict[str, int] = {}
            for _ in range(100):
                try:
                    statuses = {
                        name: stub.Check(
                            health_pb2.HealthCheckRequest(service=name), timeout=1
                        ).status
                        for name in ("", "liveness")
                    }
                    break
                except grpc.RpcError:
                    time.sleep(0.1)
            # Give the readiness loop time to run its checks (database answers, NATS does not).
            time.sleep(3)
            ready = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
        assert statuses["liveness"] == health_pb2.HealthCheckResponse.SERVING
        assert ready == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
