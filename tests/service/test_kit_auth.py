"""Bearer tokens: only a valid token signed by a known key gets through, and health and
reflection answer without one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.kit.auth import TokenVerifier
from studyhall.members.v1 import members_service_pb2 as pb
from tests.support.notes_runner import running_notes
from tests.support.notes_service import SERVICE, RunningNotes

pytestmark = pytest.mark.service


@pytest.fixture
async def notes(tmp_path: Path, data_dir: Path) -> AsyncIterator[RunningNotes]:
    async with running_notes(f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}", data_dir) as running:
        yield running


# Whoami ignores its request, but the edge validates it: community_id must be a UUID.
_WHOAMI = pb.GetCommunityRequest(community_id="0b6f3f4e-8c1e-4a53-9a43-8c7e43c1b2aa")

_ES256 = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256)


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "mallory",
        "iss": "studyhall-local",
        "aud": "studyhall",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return claims


def _part(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _refused(notes: RunningNotes, token: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notes.add_note(
            pb.CreateCommunityRequest(name="sneaky"),
            metadata=[("authorization", f"Bearer {token}")],
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await notes.service.count() == 0
    return caught.value


async def test_caller_identity_reaches_the_handler(notes: RunningNotes) -> None:
    reply = await notes.whoami(_WHOAMI, metadata=notes.auth("alice"))
    assert reply.owner_user_id == "alice"
    assert reply.slug == ""


async def test_operator_claim_is_recognised(notes: RunningNotes) -> None:
    reply = await notes.whoami(_WHOAMI, metadata=notes.auth("ops", operator=True))
    assert reply.slug == "operator"


async def test_call_without_token_is_unauthenticated_and_writes_nothing(
    notes: RunningNotes,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notes.add_note(pb.CreateCommunityRequest(name="hello"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization" in (caught.value.details() or "")
    assert await notes.service.count() == 0


async def test_non_bearer_scheme_is_unauthenticated(notes: RunningNotes) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notes.add_note(
            pb.CreateCommunityRequest(name="hello"),
            metadata=[("authorization", "Basic YWxpY2U6eA==")],
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_expired_token_is_unauthenticated(notes: RunningNotes) -> None:
    private_key = notes.signer._private_key
    token = jwt.encode(
        _claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        private_key,
        algorithm="ES256",
        headers={"kid": notes.signer.kid},
    )
    error = await _refused(notes, token)
    assert "expired" in (error.details() or "")


async def test_token_signed_by_another_key_is_unauthenticated(notes: RunningNotes) -> None:
    impostor = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(_claims(), impostor, algorithm="ES256", headers={"kid": notes.signer.kid})
    await _refused(notes, token)


async def test_unknown_kid_is_unauthenticated(notes: RunningNotes) -> None:
    impostor = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(_claims(), impostor, algorithm="ES256", headers={"kid": "not-a-known-key"})
    error = await _refused(notes, token)
    assert "not-a-known-key" in (error.details() or "")


async def test_alg_none_is_unauthenticated(notes: RunningNotes) -> None:
    token = f"{_part({'alg': 'none', 'typ': 'JWT', 'kid': notes.signer.kid})}.{_part(_claims())}."
    error = await _refused(notes, token)
    assert "none" in (error.details() or "")


async def test_hmac_token_keyed_with_the_public_key_is_unauthenticated(notes: RunningNotes) -> None:
    # The classic algorithm-confusion attack: HS256 with the public key as the secret.
    public_pem = notes.signer._private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_part({'alg': 'HS256', 'kid': notes.signer.kid})}.{_part(_claims())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    error = await _refused(notes, forged)
    assert "HS256" in (error.details() or "")


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"sub": ""},
    ],
    ids=["wrong-issuer", "wrong-audience", "empty-subject"],
)
async def test_token_for_someone_else_is_unauthenticated(
    notes: RunningNotes, claims: dict[str, object]
) -> None:
    token = jwt.encode(
        _claims(**claims),
        notes.signer._private_key,
        algorithm="ES256",
        headers={"kid": notes.signer.kid},
    )
    await _refused(notes, token)


def _signed(notes: RunningNotes, claims: dict[str, object]) -> str:
    return jwt.encode(
        claims, notes.signer._private_key, algorithm="ES256", headers={"kid": notes.signer.kid}
    )


async def test_token_whose_claims_were_changed_after_signing_is_unauthenticated(
    notes: RunningNotes,
) -> None:
    header, _, signature = _signed(notes, _claims()).split(".")
    forged = f"{header}.{_part(_claims(sub='root', studyhall_operator=True))}.{signature}"
    error = await _refused(notes, forged)
    assert "signature" in (error.details() or "")


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": int(time.time()) + 3600},
        {"nbf": int(time.time()) + 3600},
        {"exp": "tomorrow"},
        {"aud": ["another-api"]},
    ],
    ids=["issued-in-the-future", "not-before-later", "expiry-not-a-number", "audience-list"],
)
async def test_token_not_valid_now_or_here_is_unauthenticated(
    notes: RunningNotes, claims: dict[str, object]
) -> None:
    await _refused(notes, _signed(notes, _claims(**claims)))


def _signed_raw(notes: RunningNotes, header: dict[str, object], claims: dict[str, object]) -> str:
    """Signed with the trusted key, whatever the header (PyJWT's encoder refuses some)."""
    signing_input = f"{_part({'alg': 'ES256', 'kid': notes.signer.kid, **header})}.{_part(claims)}"
    signature = _ES256.sign(signing_input.encode(), notes.signer._private_key)
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    ("header", "claims", "expected"),
    [
        ({"kid": ["a", "b"]}, {}, "header was refused"),
        ({"kid": {"k": "v"}}, {}, "header was refused"),
        ({"crit": ["b64"], "b64": True}, {}, "crit"),
        ({"crit": ["exp-ext"], "exp-ext": 1}, {}, "critical extension"),
        ({}, {"exp": 10**400}, "'exp'"),
        ({}, {"exp": float("nan")}, "exp"),
        ({}, {"iat": float("inf")}, "iat"),
        ({}, {"sub": "al\x00ice"}, "control character"),
        ({}, {"sub": "a" * 201}, "201 characters"),
    ],
    ids=[
        "kid-array",
        "kid-object",
        "crit-b64",
        "crit-unknown",
        "exp-huge-int",
        "exp-nan",
        "iat-infinity",
        "sub-nul",
        "sub-too-long",
    ],
)
async def test_hostile_header_or_claims_are_unauthenticated_not_internal(
    notes: RunningNotes, header: dict[str, object], claims: dict[str, object], expected: str
) -> None:
    error = await _refused(notes, _signed_raw(notes, header, _claims(**claims)))
    details = error.details() or ""
    assert expected in details
    assert "Error" not in details
    assert "Traceback" not in details


@pytest.mark.parametrize("token", ["abc", "a.b", "a.b.c.d", "!!.??.~~"])
async def test_malformed_token_is_unauthenticated(notes: RunningNotes, token: str) -> None:
    await _refused(notes, token)


async def test_audience_list_naming_this_api_is_accepted(notes: RunningNotes) -> None:
    token = _signed(notes, _claims(sub="alice", aud=["another-api", "studyhall"]))
    reply = await notes.whoami(_WHOAMI, metadata=[("authorization", f"Bearer {token}")])
    assert reply.owner_user_id == "alice"


async def test_token_without_expiry_is_unauthenticated(notes: RunningNotes) -> None:
    claims = _claims()
    del claims["exp"]
    token = jwt.encode(
        claims, notes.signer._private_key, algorithm="ES256", headers={"kid": notes.signer.kid}
    )
    await _refused(notes, token)


async def test_health_and_reflection_answer_without_token(notes: RunningNotes) -> None:
    health = await health_pb2_grpc.HealthStub(notes.channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(notes.channel)
    call = stub.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    reply = await call.read()
    await call.done_writing()
    names = {service.name for service in reply.list_services_response.service}
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names


class _Jwks:
    """A JWKS endpoint with an RSA and an EC key, as an identity provider serves it."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        keys = [{**rsa_jwk, "kid": "rsa-2026"}, {**ec_jwk, "kid": "ec-2026"}]
        self.document = json.dumps({"keys": keys}).encode()
        self.requests = 0


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, _Jwks]]:
    jwks = _Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            jwks.requests += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks.document)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", jwks
    finally:
        server.shutdown()
        server.server_close()


async def test_jwks_endpoint_picks_the_key_by_kid(
    tmp_path: Path, data_dir: Path, jwks_server: tuple[str, _Jwks]
) -> None:
    url, jwks = jwks_server
    verifier = TokenVerifier(
        issuer="https://id.example.org/",
        audience="studyhall",
        algorithms=["RS256", "ES256"],
        jwks_url=url,
    )
    claims = _claims(iss="https://id.example.org/", sub="carol")
    rsa_token = jwt.encode(claims, jwks.rsa, algorithm="RS256", headers={"kid": "rsa-2026"})
    ec_token = jwt.encode(claims, jwks.ec, algorithm="ES256", headers={"kid": "ec-2026"})
    swapped = jwt.encode(claims, jwks.ec, algorithm="ES256", headers={"kid": "rsa-2026"})
    unknown = jwt.encode(claims, jwks.ec, algorithm="ES256", headers={"kid": "retired-2019"})
    async with running_notes(
        f"sqlite+aiosqlite:///{tmp_path / 'notes.db'}", data_dir, verifier=verifier
    ) as notes:
        for token in (rsa_token, ec_token):
            reply = await notes.whoami(_WHOAMI, metadata=[("authorization", f"Bearer {token}")])
            assert reply.owner_user_id == "carol"
        for token in (swapped, unknown):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await notes.whoami(_WHOAMI, metadata=[("authorization", f"Bearer {token}")])
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert jwks.requests >= 1
