"""Small helpers shared by the benchmarks: percentiles, CPU accounting, offering calls to
gRPC servers, waiting on a service process (its health, its outbox), machine facts and a
profile summary. Nothing here knows a service's domain: methods and tables are handed in."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import itertools
import os
import platform
import pstats
import resource
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Table, func, select

from services.kit.database import Database
from tests.harness.servers import provide_postgres


@contextlib.contextmanager
def store_database(store: str, workdir: Path, sqlite_file: Path, name: str) -> Iterator[str]:
    """A fresh database for one run: `name`_<random> on the test harness's PostgreSQL (the
    server is stopped afterwards when the harness started it), or the SQLite file."""
    if store == "postgresql":
        with provide_postgres(workdir / "postgres") as server:
            yield server.create_database(f"{name}_{uuid.uuid4().hex[:8]}")
    else:
        yield f"sqlite+aiosqlite:///{sqlite_file}"


@contextlib.contextmanager
def profiling(pid: int, seconds: float, output: str) -> Iterator[None]:
    """py-spy's raw profile of process `pid` for the next `seconds` (every thread, 200
    samples a second, `--gil`: only while Python runs), written to `output`."""
    spy = subprocess.Popen(
        [
            *(str(Path(sys.executable).parent / "py-spy"), "record", "--gil"),
            *("--rate", "200", "--pid", str(pid), "--format", "raw"),
            *("--duration", str(int(seconds)), "-o", output),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.wait()


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class Latency:
    count: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        return cls(
            len(seconds),
            percentile(seconds, 0.50),
            percentile(seconds, 0.99),
            max(seconds, default=0.0),
        )


# --------------------------------------------------------------------------------------------
# CPU accounting: this process (every thread), another process by pid, the whole machine
# --------------------------------------------------------------------------------------------


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields after the command: state is [0], utime [11], stime [12] (clock ticks).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in first]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    total = sum(ticks[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuUse:
    """Cores kept busy during an interval (1.0 = one core all the time)."""

    wall: float
    python: float
    others: dict[str, float]
    machine: float

    def describe(self) -> str:
        parts = [f"this process {self.python:.2f}"]
        parts += [f"{name} {value:.2f}" for name, value in self.others.items()]
        parts.append(f"whole machine {self.machine:.2f} of {os.cpu_count()}")
        return "cores busy: " + ", ".join(parts)


class CpuMeter:
    """Measures how many cores this process, named other processes and the machine used."""

    def __init__(self, others: dict[str, int | None]) -> None:
        self.others = {name: pid for name, pid in others.items() if pid}
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, dict[str, float], tuple[float, float]]:
        return (
            time.monotonic(),
            _self_cpu(),
            {name: _process_cpu(pid) for name, pid in self.others.items()},
            _machine_busy(),
        )

    def stop(self) -> CpuUse:
        wall0, self0, others0, (busy0, total0) = self._start
        wall1, self1, others1, (busy1, total1) = self._sample()
        wall = max(wall1 - wall0, 1e-9)
        cores = os.cpu_count() or 1
        machine = (busy1 - busy0) / max(total1 - total0, 1e-9) * cores
        return CpuUse(
            wall=wall,
            python=(self1 - self0) / wall,
            others={name: (others1[name] - others0[name]) / wall for name in self.others},
            machine=machine,
        )


# --------------------------------------------------------------------------------------------
# A service process under load: when it serves, when its outbox has drained
# --------------------------------------------------------------------------------------------


BROKER = "nats-server"


@dataclass
class Result:
    rate: float
    latency: Latency
    errors: int
    # Cores kept busy: by each named process, by the whole machine and by the calling client
    # (this process).
    cores_by_process: dict[str, float]
    busy_cores: float
    client_cores: float
    # A service with an outbox: rows unpublished when the load stopped, and how long they
    # took to publish.
    backlog: int = 0
    drain_seconds: float = 0.0

    def per_call_ms(self, cores: float) -> float:
        """CPU milliseconds per answered call of something that kept `cores` busy."""
        return cores / max(self.rate, 1e-9) * 1000

    @property
    def cpu_by_process(self) -> dict[str, float]:
        return {name: self.per_call_ms(cores) for name, cores in self.cores_by_process.items()}

    @property
    def server_cpu_ms(self) -> float:
        """The servers' CPU per call: nats-server is listed by process but not counted."""
        return self.per_call_ms(
            sum(cores for name, cores in self.cores_by_process.items() if name != BROKER)
        )


@dataclass(frozen=True)
class Method:
    """A unary method by its path, with its request and response types."""

    path: str
    request: type[Message]
    response: type[Message]


async def offer_calls(
    ports: list[int],
    server_pids: dict[str, int],
    method: Method,
    request_for: Callable[[], Message],
    tokens: list[str],
    seconds: float,
    concurrency: int,
    *,
    reuse_tokens: bool = False,
    answered: Callable[[Any], None] | None = None,
    exhausted: str = "ran out of pre-signed tokens",
) -> Result:
    """Calls of `method`, `concurrency` in flight, for `seconds`, spread evenly over the
    servers listening on `ports` (as a Kubernetes Service spreads them); each call carries
    the next of `tokens` (the first 100 warm up the connections and the servers' first-call
    paths), and `answered` sees every reply. With `reuse_tokens` the calls go round the
    tokens; otherwise running out of them stops the run with `exhausted`."""
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in ports]
    try:
        calls = [
            channel.unary_unary(
                method.path,
                request_serializer=method.request.SerializeToString,
                response_deserializer=method.response.FromString,
            )
            for channel in channels
        ]
        for number, token in enumerate(tokens[:100]):
            reply = await calls[number % len(calls)](
                request_for(), metadata=(("authorization", f"Bearer {token}"),), timeout=10
            )
            if answered is not None:
                answered(reply)
        pending = itertools.cycle(tokens[100:]) if reuse_tokens else iter(tokens[100:])
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds

        async def client(call: Any) -> None:
            nonlocal errors
            for token in pending:
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                try:
                    reply = await call(
                        request_for(),
                        metadata=(("authorization", f"Bearer {token}"),),
                        timeout=10,
                    )
                except grpc.RpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if answered is not None:
                    answered(reply)

        started = time.perf_counter()
        meter = CpuMeter(dict(server_pids))
        await asyncio.gather(*(client(calls[n % len(calls)]) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
        use = meter.stop()
    finally:
        for channel in channels:
            await channel.close()
    if not reuse_tokens and len(latencies) + errors >= len(tokens) - 100:
        raise SystemExit(exhausted)
    return Result(
        len(latencies) / elapsed,
        Latency.of(latencies),
        errors,
        cores_by_process=use.others,
        busy_cores=use.machine,
        client_cores=use.python,
    )


async def wait_serving(port: int, name: str) -> None:
    """Until the gRPC health service on `port` says SERVING (`name` for the message)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            with contextlib.suppress(grpc.RpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit(f"{name} never became SERVING")


async def outbox_backlog(url: str, outbox: Table) -> int:
    """Events committed but not yet published by the relay."""
    database = Database(url)
    try:
        async with database.read() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
                )
                or 0
            )
    finally:
        await database.close()


def drain(database_url: str, outbox: Table, timeout: float = 300) -> tuple[int, float]:
    """(events waiting in the outbox when the load stopped, seconds until none were)."""
    started = time.perf_counter()
    backlog = left = asyncio.run(outbox_backlog(database_url, outbox))
    while left and time.perf_counter() - started < timeout:
        time.sleep(0.2)
        left = asyncio.run(outbox_backlog(database_url, outbox))
    if left:
        raise SystemExit(f"{left} events still unpublished {timeout:.0f} s after the load")
    return backlog, time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# Machine facts for RESULTS.md
# --------------------------------------------------------------------------------------------


def machine_facts(nats_server: Path | None) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    system = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                system = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    except OSError:
        pass
    nats_version = "unknown"
    if nats_server is not None:
        try:
            result = subprocess.run(
                [str(nats_server), "--version"], capture_output=True, text=True, timeout=10
            )
            nats_version = (result.stdout + result.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return {
        "cpus": str(os.cpu_count()),
        "cpu model": cpu,
        "memory": memory,
        "os": system,
        "python": platform.python_version(),
        "nats-server": nats_version,
    }


# --------------------------------------------------------------------------------------------
# Profile summaries
# --------------------------------------------------------------------------------------------

# First match wins: more specific paths before the packages that contain them.
_BUCKETS = (
    ("services/kit/events", "kit.events (relay, consumer, envelope, outbox)"),
    ("services/", "services (repositories, handlers)"),
    ("bench/", "benchmark driver"),
    ("sqlalchemy", "SQLAlchemy"),
    ("aiosqlite", "aiosqlite"),
    ("asyncpg", "asyncpg"),
    ("alembic", "alembic"),
    ("nats/", "nats-py"),
    ("opentelemetry", "OpenTelemetry API"),
    ("google/protobuf", "protobuf"),
    ("asyncio", "asyncio event loop"),
    ("threading", "threads (queue hand-off)"),
    ("queue.py", "threads (queue hand-off)"),
    ("json", "json"),
    ("uuid", "uuid"),
    ("datetime", "datetime"),
)


def _bucket(filename: str, function: str) -> str:
    for needle, name in _BUCKETS:
        if needle in filename:
            return name
    if filename == "~":
        # Built-ins: name them by what they are, e.g. <method 'execute' of 'sqlite3.Cursor'>.
        if "select" in function or "poll" in function:
            return "waiting for I/O (selector)"
        if "sqlite3" in function:
            return "sqlite3 (C, on the event loop thread)"
        return "built-ins"
    return "other Python"


# Calls worth counting per event: (file suffix, function, label).
_COUNTED = (
    ("sqlalchemy/engine/base.py", "execute", "SQL statements (Connection.execute)"),
    ("nats/js/client.py", "publish_async", "JetStream publishes"),
    ("nats/aio/msg.py", "ack", "JetStream acks"),
)


def profile_summary(profile: cProfile.Profile, *, events: int = 0, top: int = 25) -> str:
    """Top functions by cumulative and by own time, own time grouped by package, and how
    many SQL statements, publishes and acks each event cost.

    Coroutines and greenlets make cProfile's cumulative figures overlap (every resume is a
    call); own time and the call counts of plain functions are the reliable columns."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    raw = pstats.Stats(profile)
    totals: dict[str, float] = defaultdict(float)
    entries = raw.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in entries.items():
        totals[_bucket(filename, function)] += tottime
    grand = sum(totals.values()) or 1.0
    if events:
        out.write(f"calls per event ({events} events):\n")
        for suffix, function, label in _COUNTED:
            calls = sum(
                total
                for (filename, _line, name), (_cc, total, _tt, _ct, _callers) in entries.items()
                if name == function and filename.endswith(suffix)
            )
            out.write(f"  {label:<48} {calls:8d}  {calls / events:6.2f} per event\n")
    out.write("own time by package (event-loop thread only):\n")
    for name, seconds in sorted(totals.items(), key=lambda pair: -pair[1]):
        if seconds / grand >= 0.005:
            out.write(f"  {name:<48} {seconds:7.2f} s  {seconds / grand:6.1%}\n")
    return out.getvalue()
