"""Health checks for Studyhall containers: Docker Compose `healthcheck` and Kubernetes exec
probes (Kubernetes checks `serve` processes with its native gRPC probe instead).

    python /app/deploy/healthcheck.py grpc 127.0.0.1:50051 [--service NAME]
        A `serve` process: grpc.health.v1 Check. The empty service name (the default) is
        readiness: SERVING once the service's own database answers and migrations ran;
        `--service liveness` only asks whether the process answers.

    python /app/deploy/healthcheck.py worker
        A `relay` or `consume` process, which has no gRPC server: the process (PID 1) is
        running and holds an established TCP connection to a NATS server of
        STUDYHALL_NATS_URL. NATS drops a client that stops answering its pings, so a
        connection also means the event loop is alive.

    python /app/deploy/healthcheck.py process
        PID 1 exists and is neither a zombie nor stopped: all that can be said about a
        worker without asking its broker (a worker liveness probe, so a NATS outage does
        not restart it).

Exit status 0 when healthy, 1 when not, with one line saying why.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

ESTABLISHED = "01"


def check_grpc(address: str, service: str, timeout: float) -> tuple[bool, str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            return False, f"{address}: {error.code().name}: {error.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    what = f"{address} {service or 'readiness'}: {status}"
    return reply.status == health_pb2.HealthCheckResponse.SERVING, what


def process_state(pid: int = 1) -> str:
    """The state letter of a process (R, S, D, Z, T, ...)."""
    # /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces and parentheses.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def check_process() -> tuple[bool, str]:
    try:
        state = process_state()
    except OSError as error:
        return False, f"cannot read the state of PID 1: {error}"
    if state in {"Z", "T", "t", "X"}:
        return False, f"PID 1 is in state {state}"
    return True, f"PID 1 is in state {state}"


def nats_ports(url: str) -> set[int]:
    ports = set()
    for server in url.split(","):
        server = server.strip()
        if not server:
            continue
        if "://" not in server:
            server = f"nats://{server}"
        ports.add(urlsplit(server).port or 4222)
    return ports


def established_remote_ports(proc_net: Path = Path("/proc/net")) -> set[int]:
    """Remote ports of the established TCP connections of this network namespace."""
    ports = set()
    for table in ("tcp", "tcp6"):
        path = proc_net / table
        try:
            lines = path.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st ...; addresses are HEXIP:HEXPORT
            if len(fields) > 3 and fields[3] == ESTABLISHED:
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def check_worker(nats_url: str) -> tuple[bool, str]:
    alive, why = check_process()
    if not alive:
        return alive, why
    wanted = nats_ports(nats_url)
    if wanted & established_remote_ports():
        return True, f"connected to NATS ({nats_url})"
    return False, f"no established connection to NATS at {nats_url}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    grpc_mode = modes.add_parser("grpc", help="grpc.health.v1 check of a serve process")
    grpc_mode.add_argument("address", help="HOST:PORT of the gRPC server")
    grpc_mode.add_argument("--service", default="", help="health service name ('' = readiness)")
    grpc_mode.add_argument("--timeout", type=float, default=3.0)
    worker_mode = modes.add_parser("worker", help="a relay or consume process")
    worker_mode.add_argument(
        "--nats-url",
        default=os.environ.get("STUDYHALL_NATS_URL", "nats://127.0.0.1:14222"),
        help="defaults to STUDYHALL_NATS_URL",
    )
    modes.add_parser("process", help="PID 1 is running")
    args = parser.parse_args(argv)

    if args.mode == "grpc":
        healthy, why = check_grpc(args.address, args.service, args.timeout)
    elif args.mode == "worker":
        healthy, why = check_worker(args.nats_url)
    else:
        healthy, why = check_process()
    print(("healthy: " if healthy else "unhealthy: ") + why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
