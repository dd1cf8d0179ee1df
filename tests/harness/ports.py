"""Free ports and readiness polling for the test servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now.

    The kernel picks it, so it never collides with the servers already running on their usual
    ports; another process may still take it before the caller binds it, which is rare enough
    for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    abort: Callable[[], str | None] = lambda: None,
) -> bool:
    """Poll `ready` until it returns true (True) or `timeout` seconds pass (False).

    `abort` returns a reason to stop early (e.g. the server process died); the wait then
    returns False at once instead of sitting out the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return True
        if abort() is not None or time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The last lines of a server log, for error messages."""
    if path is None:
        return "(no log file)"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    tail = text.splitlines()[-lines:]
    if not tail:
        return f"(log {path} is empty)"
    return f"last {len(tail)} lines of {path}:\n" + "\n".join(tail)
