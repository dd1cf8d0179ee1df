"""Small helpers shared by the benchmarks: percentiles, CPU accounting, machine facts and a
profile summary. Nothing here touches the services."""

from __future__ import annotations

import cProfile
import io
import os
import platform
import pstats
import resource
import subprocess
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


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
