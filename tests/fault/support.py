"""Service processes that fault tests start, SIGKILL and start again, and their logs."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from services.kit.events.connection import servers
from tests.harness.ports import log_tail
from tests.support.processes import inherited_environment
from tests.support.services import free_port


def service_environment(
    *,
    data_dir: Path,
    nats_url: str,
    redis_url: str,
    members_database_url: str,
    analytics_database_url: str,
    content_database_url: str = "",
) -> dict[str, str]:
    """The environment of every process of one test: members and analytics with their own
    databases, relay and consumers run as processes of their own."""
    env = inherited_environment(telemetry=False)
    env.update(
        STUDYHALL_DATA_DIR=str(data_dir),
        STUDYHALL_NATS_URL=nats_url,
        STUDYHALL_REDIS_URL=redis_url,
        STUDYHALL_RELAY="external",
        STUDYHALL_CONSUMERS="external",
        STUDYHALL_SHUTDOWN_GRACE_SECONDS="5",
        # Bursts of joins into one community are these tests' load, not abuse to refuse.
        STUDYHALL_RATE_LIMIT_PER_CALLER="",
        STUDYHALL_RATE_LIMIT_PER_COMMUNITY="",
        STUDYHALL_MEMBERS_DATABASE_URL=members_database_url,
        STUDYHALL_MEMBERS_GRPC_PORT=str(free_port()),
        STUDYHALL_MEMBERS_METRICS_PORT=str(free_port()),
        STUDYHALL_ANALYTICS_DATABASE_URL=analytics_database_url,
        STUDYHALL_ANALYTICS_GRPC_PORT=str(free_port()),
        STUDYHALL_ANALYTICS_METRICS_PORT=str(free_port()),
    )
    if content_database_url:
        env.update(
            STUDYHALL_CONTENT_DATABASE_URL=content_database_url,
            STUDYHALL_CONTENT_GRPC_PORT=str(free_port()),
            STUDYHALL_CONTENT_METRICS_PORT=str(free_port()),
        )
    return env


@dataclass
class ServiceProcess:
    """`python -m services.<service> <mode>`, restartable; each run logs to a file of its own."""

    service: str
    mode: str
    env: dict[str, str]
    log_dir: Path
    # Replicas beyond the first (1, 2, ...) are named and given ports of their own.
    replica: int = 0
    runs: int = 0
    kills: int = 0
    # Exit codes of runs that ended without being killed by us: a crash, unless we stopped it.
    unexpected_exits: list[tuple[int, int]] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = None
    # Relays and consumers serve health and metrics too: on this one host, ports of their own,
    # kept across restarts.
    _ports: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.mode}" + (f"-{self.replica}" if self.replica else "")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        self._note_exit()
        self.runs += 1
        with open(self._log_path(self.runs), "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.service}", self.mode],
                env={**self.env, **self._own_ports()},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _own_ports(self) -> dict[str, str]:
        if (self.mode != "serve" or self.replica) and not self._ports:
            prefix = f"STUDYHALL_{self.service.upper()}_"
            self._ports = {
                prefix + "GRPC_PORT": str(free_port()),
                prefix + "METRICS_PORT": str(free_port()),
            }
        return self._ports

    @property
    def address(self) -> str:
        """Where this process serves gRPC."""
        key = f"STUDYHALL_{self.service.upper()}_GRPC_PORT"
        return f"127.0.0.1:{self._own_ports().get(key) or self.env[key]}"

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, whatever was in flight is cut off."""
        self._note_exit()
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self.kills += 1
        self._process = None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (the process is killed after `timeout`)."""
        self._note_exit()
        process, self._process = self._process, None
        if process is None:
            return 0
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return -signal.SIGKILL

    def _note_exit(self) -> None:
        """Remember a run that ended on its own (a crash), before its handle is replaced."""
        if self._process is not None and self._process.poll() is not None:
            self.unexpected_exits.append((self.runs, self._process.returncode))
            self._process = None

    def _log_path(self, run: int) -> Path:
        return self.log_dir / f"{self.name}-{run}.log"

    def logged(self, text: str) -> bool:
        """Whether the current run has logged a line containing `text` yet."""
        path = self._log_path(self.runs)
        return path.exists() and text in path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> Iterator[str]:
        for run in range(1, self.runs + 1):
            path = self._log_path(run)
            if path.exists():
                yield from path.read_text(encoding="utf-8", errors="replace").splitlines()

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self._log_path(self.runs), lines)


def log_entries(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON log entries among `lines` (a killed process may leave half a line)."""
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def warning_counts(process: ServiceProcess) -> Counter[str]:
    """WARNING and ERROR log entries of every run, by the message's text up to its first
    number or colon: e.g. "members relay failed, retrying in" -> how often."""
    counts: Counter[str] = Counter()
    for entry in log_entries(process.log_lines()):
        if entry.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            counts[_message_kind(str(entry.get("message", "")))] += 1
    return counts


def _message_kind(message: str) -> str:
    words: list[str] = []
    for word in message.split():
        if any(ch.isdigit() for ch in word):
            break
        words.append(word.rstrip(":"))
        if word.endswith(":"):
            break
    return " ".join(words)


class ConsumerWatch:
    """A durable JetStream consumer's delivery state, polled from outside its process
    through a NATS connection of the test's own (which rides out nats-server restarts)."""

    def __init__(self, client: Client, stream: str, durable: str) -> None:
        self._client = client
        self._js = client.jetstream()
        self.stream = stream
        self.durable = durable

    @classmethod
    async def connect(cls, url: str, stream: str, durable: str) -> ConsumerWatch:
        async def quiet(_error: Exception) -> None:
            pass

        client = await nats.connect(
            servers(url),
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            connect_timeout=2,
            error_cb=quiet,
        )
        return cls(client, stream, durable)

    async def close(self) -> None:
        await self._client.close()

    async def delivery(self) -> tuple[int, int] | None:
        """(deliveries so far, delivered but unacknowledged), or None while unavailable."""
        try:
            info = await self._js.consumer_info(self.stream, self.durable, timeout=0.5)
        except Exception:  # nats-server down or restarting, consumer not created yet
            return None
        return int(info.delivered.consumer_seq), int(info.num_ack_pending or 0)

    async def wait_for_batch_in_flight(self, since: int, timeout: float) -> bool:
        """Wait until messages delivered after `since` deliveries are not yet acknowledged:
        a batch is being applied. False when none was seen within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            state = await self.delivery()
            if state is not None and state[0] > since and state[1] > 0:
                return True
            await asyncio.sleep(0.005)
        return False
