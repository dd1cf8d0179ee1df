"""Bearer tokens a hostile or careless issuer could sign: each is refused as
Unauthenticated with a message that says what is wrong, never with another exception.

The tokens are signed with the key the verifier trusts, so each is refused for its header
or claims, not for its signature.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path

import jwt
import pytest

from services.kit.auth import LocalSigner, TokenVerifier
from services.kit.errors import Unauthenticated

pytestmark = pytest.mark.unit

_ES256 = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256)


@pytest.fixture
def signer(tmp_path: Path) -> LocalSigner:
    return LocalSigner.ensure(tmp_path)


@pytest.fixture
def verifier(tmp_path: Path, signer: LocalSigner) -> TokenVerifier:
    return TokenVerifier(
        issuer=signer.issuer,
        audience=signer.audience,
        algorithms=["ES256"],
        key_file=tmp_path / "keys" / "signing.jwks.json",
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(signer: LocalSigner, header: bytes, payload: bytes) -> str:
    """Any header and payload bytes, signed with the trusted key (PyJWT's own encoder
    refuses to write some of these headers)."""
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    signature = _ES256.sign(signing_input.encode(), signer._private_key)
    return f"{signing_input}.{_b64(signature)}"


def _claims(signer: LocalSigner, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "alice",
        "iss": signer.issuer,
        "aud": signer.audience,
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return claims


def _token(
    signer: LocalSigner, claims: dict[str, object] | None = None, /, **header: object
) -> str:
    full_header = {"alg": "ES256", "typ": "JWT", "kid": signer.kid, **header}
    payload = _claims(signer) if claims is None else claims
    return _sign(signer, json.dumps(full_header).encode(), json.dumps(payload).encode())


async def _refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    message = caught.value.message
    assert message
    # Said for a person: no exception class names, no traceback.
    assert not re.search(r"Error\b|Exception|Traceback", message), message
    assert token not in verifier._verified
    return message


# -- a kid that is not a string --------------------------------------------------------


@pytest.mark.parametrize(
    "kid", [["a", "b"], {"k": "v"}, 7, True], ids=["array", "object", "number", "bool"]
)
async def test_kid_that_is_not_a_string_is_refused(
    verifier: TokenVerifier, signer: LocalSigner, kid: object
) -> None:
    message = await _refused(verifier, _token(signer, kid=kid))
    assert re.search(r"kid|key id", message, re.IGNORECASE), message


async def test_token_without_kid_names_the_missing_key(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    header = json.dumps({"alg": "ES256"}).encode()
    message = await _refused(verifier, _sign(signer, header, json.dumps(_claims(signer)).encode()))
    assert "no signing key" in message


async def test_long_unknown_kid_is_quoted_back_cut_short(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    message = await _refused(verifier, _token(signer, kid="k" * 5000))
    assert "no signing key" in message
    assert len(message) < 200


# -- times that are not finite numbers -------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "value", "expected"),
    [
        ("exp", float("nan"), "exp"),
        ("exp", float("inf"), "exp"),
        ("exp", float("-inf"), "exp"),
        ("exp", "tomorrow", "exp"),
        ("exp", "99999999999", "exp"),
        ("exp", True, "expired"),  # PyJWT reads true as 1: 1970
        ("exp", 10**400, "exp"),
        ("exp", 1e300, "exp"),
        ("exp", [1], "exp"),
        ("iat", float("nan"), "iat"),
        ("iat", True, "iat"),
        ("iat", "0", "iat"),
        ("iat", -(10**400), "iat"),
        ("nbf", float("nan"), "nbf"),
        ("nbf", -(10**400), "nbf"),
        ("nbf", {"t": 1}, "nbf"),
    ],
    ids=[
        "exp-nan",
        "exp-infinity",
        "exp-minus-infinity",
        "exp-word",
        "exp-numeric-string",
        "exp-bool",
        "exp-huge-int",
        "exp-beyond-year-9999",
        "exp-array",
        "iat-nan",
        "iat-bool",
        "iat-string",
        "iat-huge-negative-int",
        "nbf-nan",
        "nbf-huge-negative-int",
        "nbf-object",
    ],
)
async def test_time_claim_that_is_not_a_finite_number_is_refused(
    verifier: TokenVerifier, signer: LocalSigner, claim: str, value: object, expected: str
) -> None:
    message = await _refused(verifier, _token(signer, _claims(signer, **{claim: value})))
    assert expected in message


async def test_exp_written_as_1e400_is_refused(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    # JSON allows 1e400; Python reads it as infinity.
    now = int(time.time())
    payload = (
        f'{{"sub": "alice", "iss": "{signer.issuer}", "aud": "{signer.audience}", '
        f'"iat": {now}, "exp": 1e400}}'
    )
    header = json.dumps({"alg": "ES256", "kid": signer.kid}).encode()
    message = await _refused(verifier, _sign(signer, header, payload.encode()))
    assert "exp" in message


@pytest.mark.parametrize("claim", ["iat", "nbf"])
async def test_token_issued_in_the_future_is_refused(
    verifier: TokenVerifier, signer: LocalSigner, claim: str
) -> None:
    future = int(time.time()) + 3600
    message = await _refused(verifier, _token(signer, _claims(signer, **{claim: future})))
    assert f"not valid yet ({claim} is ahead)" in message


async def test_expired_token_is_refused(verifier: TokenVerifier, signer: LocalSigner) -> None:
    past = int(time.time()) - 3600
    message = await _refused(verifier, _token(signer, _claims(signer, iat=past - 60, exp=past)))
    assert "expired" in message


async def test_times_within_the_leeway_and_as_floats_are_accepted(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    now = time.time()
    claims = _claims(signer, iat=now + 10, nbf=now + 10, exp=now + 300.5)
    identity = await verifier.verify(_token(signer, claims))
    assert identity.user_id == "alice"


# -- subjects ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("al\x00ice", "control character"),
        ("alice\n", "control character"),
        ("al\x1bice", "control character"),
        ("al\x7fice", "control character"),
        ("al\x85ice", "control character"),
        ("al\ud800ice", "control character"),
        ("", "no subject"),
        ("a" * 201, "201 characters"),
        (7, "ubject"),
        (["alice"], "ubject"),
        (None, "'sub'"),
    ],
    ids=[
        "nul",
        "newline",
        "escape",
        "delete",
        "c1-control",
        "lone-surrogate",
        "empty",
        "201-characters",
        "number",
        "array",
        "null",
    ],
)
async def test_subject_unfit_to_store_is_refused(
    verifier: TokenVerifier, signer: LocalSigner, subject: object, expected: str
) -> None:
    message = await _refused(verifier, _token(signer, _claims(signer, sub=subject)))
    assert expected in message


async def test_missing_subject_is_refused(verifier: TokenVerifier, signer: LocalSigner) -> None:
    claims = _claims(signer)
    del claims["sub"]
    message = await _refused(verifier, _token(signer, claims))
    assert "'sub'" in message


@pytest.mark.parametrize("subject", ["a" * 200, "Zoë 初学者", "auth0|5f7c8ec7c33c6c004bbafe82"])
async def test_printable_subject_up_to_200_characters_is_accepted(
    verifier: TokenVerifier, signer: LocalSigner, subject: str
) -> None:
    identity = await verifier.verify(_token(signer, _claims(signer, sub=subject)))
    assert identity.user_id == subject


# -- crit --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        {"crit": ["exp-ext"], "exp-ext": 1},
        {"crit": ["exp-ext"]},
        {"crit": ["b64"], "b64": True},
        {"crit": []},
        {"crit": "b64"},
        {"crit": [1]},
    ],
    ids=["unknown", "unknown-absent", "b64-true", "empty", "not-a-list", "not-strings"],
)
async def test_token_with_critical_extensions_is_refused(
    verifier: TokenVerifier, signer: LocalSigner, header: dict[str, object]
) -> None:
    message = await _refused(verifier, _token(signer, **header))
    assert "crit" in message.lower()


async def test_detached_payload_is_refused(verifier: TokenVerifier, signer: LocalSigner) -> None:
    header = json.dumps({"alg": "ES256", "kid": signer.kid, "b64": False, "crit": ["b64"]})
    token = _sign(signer, header.encode(), b"")
    header_part, _, signature = token.split(".")
    await _refused(verifier, f"{header_part}..{signature}")


# -- malformed tokens --------------------------------------------------------------------


async def test_header_that_is_not_json_is_refused(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    token = _sign(signer, b"{not json", json.dumps(_claims(signer)).encode())
    message = await _refused(verifier, token)
    assert "malformed bearer token" in message
    assert "header" in message


async def test_header_that_is_not_an_object_is_refused(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    token = _sign(signer, b'["ES256"]', json.dumps(_claims(signer)).encode())
    message = await _refused(verifier, token)
    assert "header" in message


@pytest.mark.parametrize("payload", [b"{not json", b'["alice"]', b"\xff\xfe"])
async def test_claims_that_are_not_a_json_object_are_refused(
    verifier: TokenVerifier, signer: LocalSigner, payload: bytes
) -> None:
    header = json.dumps({"alg": "ES256", "kid": signer.kid}).encode()
    message = await _refused(verifier, _sign(signer, header, payload))
    assert "payload" in message


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.??.~~",
        "e30.e30.@@@",
        "é.é.é",
        "\ud800.x.y",
        "eyJhbGciOiJFUzI1NiJ9.e30",
    ],
)
async def test_token_that_is_not_a_jws_is_refused(verifier: TokenVerifier, token: str) -> None:
    message = await _refused(verifier, token)
    assert "malformed bearer token" in message


async def test_valid_header_with_garbage_after_it_is_refused(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    header_part = _token(signer).split(".")[0]
    await verifier.verify(_token(signer))  # the header is now known
    for token in (header_part, f"{header_part}.!!.??", f"{header_part}.e30"):
        message = await _refused(verifier, token)
        assert "malformed bearer token" in message
    assert "signature" in await _refused(verifier, f"{header_part}..")
    assert "malformed bearer token" in await _refused(verifier, f"{header_part}.\ud800.x")


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", ["ES256"], None])
async def test_algorithm_not_accepted_is_refused(
    verifier: TokenVerifier, signer: LocalSigner, alg: object
) -> None:
    message = await _refused(verifier, _token(signer, alg=alg))
    assert "is not accepted" in message


async def test_changed_claims_break_the_signature_even_with_a_known_header(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    header_part, _, signature = _token(signer).split(".")
    await verifier.verify(_token(signer))
    payload = _b64(json.dumps(_claims(signer, sub="root", studyhall_operator=True)).encode())
    message = await _refused(verifier, f"{header_part}.{payload}.{signature}")
    assert "signature" in message


async def test_wrong_issuer_and_audience_are_refused(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    assert "issuer" in await _refused(verifier, _token(signer, _claims(signer, iss="other")))
    assert "audience" in await _refused(verifier, _token(signer, _claims(signer, aud="other")))
    assert "audience" in await _refused(verifier, _token(signer, _claims(signer, aud=[7])))


# -- what still gets through -------------------------------------------------------------


async def test_valid_token_is_accepted_and_cached(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    token = signer.mint("alice")
    identity = await verifier.verify(token)
    assert identity.user_id == "alice"
    assert identity.operator is False
    assert token in verifier._verified
    assert await verifier.verify(token) is identity


@pytest.mark.parametrize(
    ("value", "operator"), [(True, True), ("true", False), (1, False), (None, False)]
)
async def test_operator_claim_counts_only_when_exactly_true(
    verifier: TokenVerifier, signer: LocalSigner, value: object, operator: bool
) -> None:
    identity = await verifier.verify(
        _token(signer, _claims(signer, studyhall_operator=value, sub="ops"))
    )
    assert identity.operator is operator


async def test_rotated_key_file_is_reread_for_an_unknown_kid(
    tmp_path: Path, verifier: TokenVerifier, signer: LocalSigner
) -> None:
    assert (await verifier.verify(signer.mint("alice"))).user_id == "alice"
    successor = LocalSigner.ensure(tmp_path / "next")
    shutil.copy(
        tmp_path / "next" / "keys" / "signing.jwks.json", tmp_path / "keys" / "signing.jwks.json"
    )
    assert (await verifier.verify(successor.mint("bob"))).user_id == "bob"


async def test_many_distinct_headers_keep_the_header_cache_bounded(
    verifier: TokenVerifier, signer: LocalSigner
) -> None:
    for index in range(200):
        await verifier.verify(_token(signer, x=index))
    assert len(verifier._headers) <= 64
