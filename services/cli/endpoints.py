"""Where the services are and who the CLI speaks as.

Against a local platform (`studyhall up`), addresses come from DATA_DIR/endpoints.json and
tokens are signed with the local key for the user given by `--as`. Elsewhere, addresses come
from STUDYHALL_<SERVICE>_ADDRESS and the token from STUDYHALL_TOKEN.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from services.kit.auth import LocalSigner

SERVICES = ("members", "content", "events", "billing", "analytics")
DEFAULT_GRPC_PORTS = {
    "members": 50051,
    "content": 50052,
    "events": 50053,
    "billing": 50054,
    "analytics": 50055,
}
DEFAULT_METRICS_PORTS = {name: port - 50051 + 9451 for name, port in DEFAULT_GRPC_PORTS.items()}


class CliError(Exception):
    pass


def data_dir() -> Path:
    return Path(os.environ.get("STUDYHALL_DATA_DIR", ".studyhall"))


@dataclass(frozen=True)
class Endpoints:
    grpc: dict[str, str]
    local_data_dir: Path | None
    nats_url: str = "nats://127.0.0.1:14222"

    @classmethod
    def discover(cls) -> Endpoints:
        directory = data_dir()
        addresses = {name: f"127.0.0.1:{DEFAULT_GRPC_PORTS[name]}" for name in SERVICES}
        manifest = directory / "endpoints.json"
        nats_url = "nats://127.0.0.1:14222"
        if manifest.exists():
            recorded = json.loads(manifest.read_text())
            nats_url = recorded.get("nats_url", nats_url)
            for name in SERVICES:
                address = recorded.get("services", {}).get(name, {}).get("grpc")
                if address:
                    addresses[name] = address
        local = directory if (directory / "keys" / "signing.pem").exists() else None
        for name in SERVICES:
            override = os.environ.get(f"STUDYHALL_{name.upper()}_ADDRESS")
            if override:
                addresses[name] = override
        nats_url = os.environ.get("STUDYHALL_NATS_URL") or nats_url
        return cls(addresses, local, nats_url)

    def token(self, user_id: str | None, *, operator: bool = False) -> str:
        if user_id:
            if self.local_data_dir is None:
                raise CliError(
                    f"--as needs a local platform's signing key in {data_dir()}/keys; "
                    "run `make up` there, or set STUDYHALL_TOKEN instead"
                )
            return LocalSigner.ensure(self.local_data_dir).mint(user_id, operator=operator)
        token = os.environ.get("STUDYHALL_TOKEN", "")
        if not token:
            raise CliError(
                "say who you are: --as USER_ID on a local platform, or set STUDYHALL_TOKEN"
            )
        return token
