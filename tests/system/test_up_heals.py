"""`studyhall up` with its own nats-server and redis-server heals when either is killed: the
supervisor starts it again, the services reconnect on their own and stay SERVING, and every
write acknowledged before, during and after the outages is there, in members and, through
the backbone, in analytics. Stopped, the platform starts again at once on the same ports
(connections lingering in TIME_WAIT do not count as taken)."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from studyhall.analytics.v1 import analytics_service_pb2 as analytics_pb
from studyhall.analytics.v1 import analytics_service_pb2_grpc as analytics_grpc
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.support.services import free_port
from tests.system.test_platform import SERVICES, Platform, _environment, _start, _stop

pytestmark = pytest.mark.system


def _embedded_environment(data_dir: Path) -> dict[str, str]:
    """As `make up` runs: no NATS or Redis given, so it starts its own, on free ports."""
    env = _environment(data_dir, nats_url="", redis_url="")
    del env["STUDYHALL_NATS_URL"], env["STUDYHALL_REDIS_URL"]
    env.update(
        STUDYHALL_NATS_PORT=str(free_port()),
        STUDYHALL_NATS_MONITOR_PORT=str(free_port()),
        STUDYHALL_REDIS_PORT=str(free_port()),
    )
    return env


def _until(check: Callable[[], bool], what: str, attempts: int = 300) -> None:
    for _ in range(attempts):
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def _kill(pid_file: Path, port: int) -> int:
    """SIGKILL the server whose pid the file holds; returns that pid once its port is shut."""
    pid = int(pid_file.read_text().strip())
    os.kill(pid, signal.SIGKILL)
    _until(lambda: not _listening(port), f"port {port} closed after killing {pid}")
    return pid


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _restarted(pid_file: Path, port: int, old_pid: int) -> bool:
    try:
        pid = int(pid_file.read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    return pid not in (0, old_pid) and _listening(port)


def _all_serving(platform: Platform) -> bool:
    for service in SERVICES:
        with platform.channel(service) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
            except grpc.RpcError:
                return False
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return False
    return True


def test_killed_nats_and_redis_are_restarted_and_no_acknowledged_write_is_lost(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = _embedded_environment(data_dir)
    nats_port, redis_port = int(env["STUDYHALL_NATS_PORT"]), int(env["STUDYHALL_REDIS_PORT"])
    nats_pid, redis_pid = (
        data_dir / "nats" / "nats-server.pid",
        data_dir / "redis" / "redis-server.pid",
    )
    platform = _start(env, data_dir)
    try:
        with platform.channel("members") as channel:
            club = members_grpc.MembersServiceStub(channel)
            owner = platform.auth("alice")
            community_id = club.CreateCommunity(
                members_pb.CreateCommunityRequest(name=f"Heal {uuid.uuid4().hex[:6]}", topic="t"),
                metadata=owner,
                timeout=30,
            ).community.id

            def join(user: str) -> None:
                club.JoinCommunity(
                    members_pb.JoinCommunityRequest(community_id=community_id),
                    metadata=platform.auth(user),
                    timeout=30,
                )

            join("bob")
            # NATS dies: joins are still acknowledged (their events wait in the outbox).
            killed = _kill(nats_pid, nats_port)
            join("carol")
            _until(lambda: _restarted(nats_pid, nats_port, killed), "nats-server restarted")
            # Redis dies: calls degrade instead of failing.
            killed = _kill(redis_pid, redis_port)
            join("dave")
            _until(lambda: _restarted(redis_pid, redis_port, killed), "redis-server restarted")
            join("erin")

            _until(lambda: _all_serving(platform), "every service SERVING")
            roster = club.ListMembers(
                members_pb.ListMembersRequest(community_id=community_id, page_size=50),
                metadata=owner,
                timeout=30,
            )
            assert {m.user_id for m in roster.members} == {"alice", "bob", "carol", "dave", "erin"}

        with platform.channel("analytics") as channel:
            stats = analytics_grpc.AnalyticsServiceStub(channel)

            def counted() -> bool:
                try:
                    reply = stats.GetCommunityStats(
                        analytics_pb.GetCommunityStatsRequest(community_id=community_id),
                        metadata=owner,
                        timeout=5,
                    )
                except grpc.RpcError:
                    return False
                return bool(reply.stats.member_count == 5)

            # Every join made it through the restarted nats-server to analytics.
            _until(counted, "analytics counted the five members", attempts=600)
        assert platform.process.poll() is None, "studyhall up stopped"
        log = (data_dir / "logs" / "nats-server.log").read_text()
        assert log.count("Server is ready") >= 2, "nats-server was not started again"
    finally:
        output = _stop(platform)
    assert "nats-server exited" in output
    assert "redis-server exited" in output

    # At once, on the same ports, with the same data.
    again = _start(env, data_dir)
    try:
        with again.channel("members") as channel:
            shown = members_grpc.MembersServiceStub(channel).GetCommunity(
                members_pb.GetCommunityRequest(community_id=community_id),
                metadata=again.auth("alice"),
                timeout=30,
            )
        assert shown.community.id == community_id
    finally:
        _stop(again)
