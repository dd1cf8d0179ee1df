"""Health check for Studyhall containers under Docker Compose (Kubernetes asks the same
grpc.health.v1 service with its native gRPC probe).

    python /app/deploy/healthcheck.py grpc 127.0.0.1:50051 [--service NAME]
        Any process, `serve`, `relay` or `consume`: grpc.health.v1 Check on the service's
        gRPC port. The empty service name (the default) is readiness: SERVING once
        migrations ran and the service's own database answers, and for a relay or consumer
        once its loops hold a NATS connection; `--service liveness` only asks whether the
        process answers.

Exit status 0 when healthy, 1 when not, with one line saying why.
"""

from __future__ import annotations

import argparse
import sys


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    grpc_mode = modes.add_parser("grpc", help="grpc.health.v1 check of a Studyhall process")
    grpc_mode.add_argument("address", help="HOST:PORT of the gRPC server")
    grpc_mode.add_argument("--service", default="", help="health service name ('' = readiness)")
    grpc_mode.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)

    healthy, why = check_grpc(args.address, args.service, args.timeout)
    print(("healthy: " if healthy else "unhealthy: ") + why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
