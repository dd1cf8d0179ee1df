"""Keeping what `studyhall up` started running: a process that dies is started again, after a
delay that doubles while it keeps dying soon after starting.

The services reconnect to NATS and Redis on their own (NATS: forever; Redis: after a short
cool-down), and the embedded nats-server keeps JetStream on disk with `sync_interval:
always`, so restarting the process that died is all a local platform needs to heal. A
process that cannot stay up (its port taken by something else, a broken data directory) is
given up on after MAX_QUICK_FAILURES deaths in a row, each within STABLE_SECONDS of its
start: then `studyhall up` stops everything and says why
(docs/decisions/0021-make-up-supervises-what-it-starts.md).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
# A run this long counts as healthy: the next death restarts after FIRST_DELAY again.
STABLE_SECONDS = 60.0
MAX_QUICK_FAILURES = 10


def restart_delay(quick_failures: int) -> float:
    """Seconds to wait before the next start after `quick_failures` deaths in a row (>= 1)."""
    return float(min(FIRST_DELAY * 2 ** (quick_failures - 1), MAX_DELAY))


@dataclass
class Child:
    """One supervised process: how to start it and what happened to it so far."""

    name: str
    spawn: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    quick_failures: int = 0
    restart_at: float | None = None
    restarts: int = 0


class GaveUp(Exception):
    """A process kept dying right after each start."""

    def __init__(self, child: Child) -> None:
        super().__init__(
            f"{child.name} exited {child.quick_failures} times in a row within "
            f"{STABLE_SECONDS:.0f}s of starting (last exit code {child.process.returncode})"
        )
        self.child = child


class Supervisor:
    """Polled by `studyhall up`'s main loop: restarts the dead, with backoff."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.children: list[Child] = []

    def add(self, name: str, spawn: Callable[[], subprocess.Popen[bytes]]) -> Child:
        child = Child(name, spawn, spawn())
        self.children.append(child)
        return child

    def tend(self, now: float | None = None) -> None:
        """Notice deaths and start again whoever's delay is over; GaveUp when one cannot
        stay up."""
        now = time.monotonic() if now is None else now
        for child in self.children:
            if child.restart_at is None:
                if child.process.poll() is None:
                    continue
                ran = now - child.started_at
                child.quick_failures = child.quick_failures + 1 if ran < STABLE_SECONDS else 1
                if child.quick_failures > MAX_QUICK_FAILURES:
                    raise GaveUp(child)
                delay = restart_delay(child.quick_failures)
                child.restart_at = now + delay
                self.say(
                    f"{child.name} exited with code {child.process.returncode}; "
                    f"starting it again in {delay:.1f}s"
                )
            if now >= child.restart_at:
                child.process = child.spawn()
                child.started_at = now
                child.restart_at = None
                child.restarts += 1
