"""`studyhall up` keeps what it started running: the restart policy with its backoff, on
real child processes with the clock handed in, and the free-port check that does not
mistake a port with lingering TIME_WAIT connections for a taken one."""

from __future__ import annotations

import socket
import subprocess

import pytest

from services.cli.endpoints import CliError
from services.cli.runner import _require_free
from services.cli.supervisor import (
    FIRST_DELAY,
    MAX_DELAY,
    MAX_QUICK_FAILURES,
    STABLE_SECONDS,
    GaveUp,
    Supervisor,
    restart_delay,
)

pytestmark = pytest.mark.unit


def exits_at_once() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", "exit 3"])


def test_the_delay_doubles_from_half_a_second_up_to_thirty() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert restart_delay(1) == FIRST_DELAY
    assert restart_delay(100) == MAX_DELAY


def test_a_dead_process_is_started_again_after_its_delay() -> None:
    said: list[str] = []
    supervisor = Supervisor(said.append)
    child = supervisor.add("nats-server", exits_at_once)
    first = child.process
    first.wait()
    supervisor.tend(now=child.started_at + 1)
    # Noticed, told, and scheduled: not started again before the delay is over.
    assert child.restart_at == child.started_at + 1 + FIRST_DELAY
    assert said == ["nats-server exited with code 3; starting it again in 0.5s"]
    supervisor.tend(now=child.started_at + 1.2)
    assert child.process is first
    supervisor.tend(now=child.started_at + 1 + FIRST_DELAY)
    assert child.process is not first
    assert child.restarts == 1
    child.process.wait()


def test_deaths_soon_after_starting_back_off_and_a_stable_run_starts_over() -> None:
    supervisor = Supervisor(lambda _: None)
    child = supervisor.add("redis-server", exits_at_once)
    now = child.started_at
    delays = []
    for _ in range(4):
        child.process.wait()
        now += 1  # died a second after starting
        supervisor.tend(now=now)
        assert child.restart_at is not None
        delays.append(child.restart_at - now)
        now = child.restart_at
        supervisor.tend(now=now)
    assert delays == [0.5, 1, 2, 4]
    child.process.wait()
    now += STABLE_SECONDS + 1  # this run lasted: the next death is a first one again
    supervisor.tend(now=now)
    assert child.restart_at == now + FIRST_DELAY
    supervisor.tend(now=child.restart_at)
    child.process.wait()


def test_a_process_that_cannot_stay_up_is_given_up_on() -> None:
    supervisor = Supervisor(lambda _: None)
    child = supervisor.add("members", exits_at_once)
    now = child.started_at
    for _ in range(MAX_QUICK_FAILURES):
        child.process.wait()
        now += 1
        supervisor.tend(now=now)
        assert child.restart_at is not None
        now = child.restart_at
        supervisor.tend(now=now)
    child.process.wait()
    with pytest.raises(GaveUp) as gave_up:
        supervisor.tend(now=now + 1)
    assert gave_up.value.child is child
    assert "members exited 11 times in a row" in str(gave_up.value)


def test_a_port_with_connections_in_time_wait_is_free_and_a_listening_one_is_taken() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = listener.accept()
        # The server side closes first, as a stopped server does: its end of the connection
        # lingers in TIME_WAIT on the server's port.
        served.close()
        client.recv(1)
        client.close()
    with socket.socket() as plain, pytest.raises(OSError, match="in use"):
        plain.bind(("127.0.0.1", port))  # what the check did before: refused
    _require_free(port, "embedded nats-server", "STUDYHALL_NATS_PORT")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(CliError, match="STUDYHALL_NATS_PORT"):
            _require_free(taken.getsockname()[1], "embedded nats-server", "STUDYHALL_NATS_PORT")
