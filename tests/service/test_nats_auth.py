"""NATS with a password and TLS, as the prod overlay runs it: the services' STUDYHALL_NATS_*
settings reach the relay, which publishes through it; a client without them is refused."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from services.kit.events.connection import NatsAuth, connect
from services.members.app import SPEC as MEMBERS
from services.members.settings import MembersSettings
from studyhall.members.v1 import members_service_pb2 as members_pb
from studyhall.members.v1 import members_service_pb2_grpc as members_grpc
from tests.harness.ports import LOOPBACK, free_port, log_tail
from tests.harness.servers import _exit_reason, _spawn, _wait_for_jetstream, find_nats_server
from tests.support.services import running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.service

USER, PASSWORD = "studyhall", "s3cret-" + uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class SecureNats:
    url: str
    ca_file: Path

    def auth(self, **changes: str) -> NatsAuth:
        fields = {"user": USER, "password": PASSWORD, "tls_ca_file": str(self.ca_file)}
        return NatsAuth(**{**fields, **changes})


def _pem_certificates(where: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "studyhall test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nats")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = where / "ca.pem", where / "server.pem", where / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@pytest.fixture(scope="module")
def secure_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureNats]:
    binary, passed_over = find_nats_server()
    assert binary is not None, passed_over
    workdir = Path(tmp_path_factory.mktemp("secure-nats"))
    ca_file, cert_file, key_file = _pem_certificates(workdir)
    port, monitor = free_port(), free_port()
    config = workdir / "nats-server.conf"
    config.write_text(
        f"listen: {LOOPBACK}:{port}\n"
        f"http: {LOOPBACK}:{monitor}\n"
        f'jetstream {{\n  store_dir: "{workdir / "js"}"\n}}\n'
        f'tls {{\n  cert_file: "{cert_file}"\n  key_file: "{key_file}"\n}}\n'
        f'authorization {{\n  user: "{USER}"\n  password: "{PASSWORD}"\n}}\n',
        encoding="utf-8",
    )
    log_path = workdir / "nats-server.log"
    process = _spawn([str(binary), "--config", str(config)], log_path=log_path, cwd=workdir)
    try:
        _wait_for_jetstream(
            host=LOOPBACK,
            port=port,
            monitor_url=f"http://{LOOPBACK}:{monitor}",
            timeout=20,
            died=lambda: _exit_reason(process),
            logs=lambda: log_tail(log_path),
            what="nats-server with TLS and a password",
        )
        yield SecureNats(f"nats://{LOOPBACK}:{port}", ca_file)
    finally:
        process.kill()
        process.wait()


async def test_a_service_publishes_through_nats_with_a_password_and_tls(
    secure_nats: SecureNats, redis_url: str, data_dir: Path
) -> None:
    async with running_service(
        MEMBERS,
        MembersSettings,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'members.db'}",
        redis_url=redis_url,
        nats_url=secure_nats.url,
        data_dir=data_dir,
        nats_user=USER,
        nats_password=PASSWORD,
        nats_tls_ca_file=str(secure_nats.ca_file),
    ) as members:
        stub = members_grpc.MembersServiceStub(members.channel)
        await stub.CreateCommunity(
            members_pb.CreateCommunityRequest(name="Guarded", topic="english"),
            metadata=members.auth("olga"),
        )
        client = await connect(secure_nats.url, "test-reader", auth=secure_nats.auth())
        try:
            js = client.jetstream()

            async def published() -> bool:
                try:
                    return (await js.stream_info("STUDYHALL_MEMBERS")).state.messages >= 1
                except NotFoundError:
                    return False

            await eventually(published, "CommunityCreated in the members stream", seconds=20)
        finally:
            await client.close()


@pytest.mark.parametrize(
    "changes",
    [{"password": "wrong"}, {"user": "", "password": ""}, {"tls_ca_file": ""}],
    ids=["wrong password", "no user", "the system's CAs only"],
)
async def test_a_client_without_the_password_or_the_ca_is_refused(
    secure_nats: SecureNats, changes: dict[str, str]
) -> None:
    auth = secure_nats.auth(**changes)
    try:
        client = await asyncio.wait_for(
            nats.connect(
                secure_nats.url,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=3,
                **auth.options(),
            ),
            timeout=10,
        )
    except TimeoutError:
        raise AssertionError("the server neither took nor refused the client") from None
    except Exception:  # nats-py refuses with several kinds (TLS, authorization)
        return
    await client.close()
    raise AssertionError(f"a client with {changes} was let in")


@pytest.mark.unit
@pytest.mark.parametrize(
    "settings",
    [
        {"nats_password": "x"},
        {"nats_tls_cert_file": __file__},
        {"nats_tls_ca_file": "/nonexistent/ca.pem"},
    ],
    ids=["password without user", "certificate without key", "missing CA file"],
)
def test_nats_settings_that_cannot_work_are_refused_at_start(settings: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        MembersSettings(**settings)  # type: ignore[arg-type]
