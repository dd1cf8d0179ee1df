"""Who is calling: bearer tokens verified against the identity provider's keys.

Tokens carry identity, not community roles (the members service is the authority on
those). Production verifies RS256/ES256 tokens through the provider's JWKS, choosing the key
by `kid`; local runs use a key pair generated once per data directory.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import json
import os
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.kit.errors import Unauthenticated

OPERATOR_CLAIM = "studyhall_operator"


@dataclass(frozen=True)
class Identity:
    user_id: str
    operator: bool = False
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


_current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "studyhall_identity", default=None
)


def current_identity() -> Identity:
    """The verified caller of the RPC being handled."""
    identity = _current.get()
    if identity is None:
        raise Unauthenticated("this call needs a bearer token in the authorization metadata")
    return identity


def bind_identity(identity: Identity | None) -> contextvars.Token[Identity | None]:
    return _current.set(identity)


def reset_identity(token: contextvars.Token[Identity | None]) -> None:
    _current.reset(token)


class KeySet:
    """Public keys by `kid`; a single PEM key is used whatever the token's `kid`."""

    def __init__(self, keys: dict[str | None, Any]) -> None:
        self._keys = keys

    @classmethod
    def from_file(cls, path: Path) -> KeySet:
        text = path.read_text()
        if text.lstrip().startswith("{"):
            return cls.from_jwks(json.loads(text))
        public_key = serialization.load_pem_public_key(text.encode())
        return cls({None: public_key})

    @classmethod
    def from_jwks(cls, data: dict[str, Any]) -> KeySet:
        key_set = jwt.PyJWKSet.from_dict(data)
        return cls({key.key_id: key.key for key in key_set.keys})

    def get(self, kid: str | None) -> Any | None:
        if None in self._keys:
            return self._keys[None]
        return self._keys.get(kid)


class TokenVerifier:
    """Verifies bearer tokens: pinned algorithms, issuer, audience, expiry, known `kid`."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        key_file: Path | None = None,
        jwks_url: str = "",
        leeway_seconds: int = 30,
        cache_size: int = 10_000,
    ) -> None:
        if not key_file and not jwks_url:
            raise ValueError("a key file or a JWKS URL is required")
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self._checkers = {name: jwt.get_algorithm_by_name(name) for name in algorithms}
        self.leeway = leeway_seconds
        self._key_file = key_file
        self._keys: KeySet | None = None
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self.cache_size = cache_size
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    async def verify(self, token: str) -> Identity:
        cached = self._verified.get(token)
        if cached is not None:
            identity, expires = cached
            if time.time() < expires:
                return identity
            del self._verified[token]
        identity = await self._verify(token)
        # A client reuses its token for many calls; verifying the signature once per token
        # instead of once per call is most of the cost of a light RPC.
        self._verified[token] = (identity, float(identity.claims["exp"]))
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return identity

    async def _verify(self, token: str) -> Identity:
        # One pass over the token: PyJWT's decode would parse it a second time after the
        # header read that picks the key, which is about 40 % of a verification.
        try:
            header_part, payload_part, signature_part = token.split(".")
            header = _json_part(header_part)
        except (ValueError, TypeError):
            raise Unauthenticated("malformed bearer token: not a JWS compact token") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise Unauthenticated(
                f"token algorithm {algorithm!r} is not accepted; use one of {self.algorithms}"
            )
        key = await self._key_for(header.get("kid"))
        checker = self._checkers[algorithm]
        try:
            prepared = checker.prepare_key(key)
            signature = _b64decode(signature_part)
            valid = checker.verify(f"{header_part}.{payload_part}".encode(), prepared, signature)
        except (jwt.PyJWTError, TypeError, ValueError, AttributeError):
            # The key's type does not fit the token's algorithm, or the signature is garbled.
            raise Unauthenticated(
                f"the bearer token's algorithm {algorithm} does not match its key"
            ) from None
        if not valid:
            raise Unauthenticated("the bearer token was refused: its signature does not verify")
        try:
            claims = _json_part(payload_part)
        except (ValueError, TypeError):
            raise Unauthenticated("malformed bearer token: its claims are not JSON") from None
        self._check_claims(claims)
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("the bearer token has no subject")
        return Identity(user_id=subject, operator=claims.get(OPERATOR_CLAIM) is True, claims=claims)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """RFC 7519 checks: the claims required here present, times as integers with the
        leeway, the issuer and the audience this service expects."""
        for name in ("exp", "iat", "sub", "iss", "aud"):
            if name not in claims:
                raise Unauthenticated(f"the bearer token was refused: it has no {name!r} claim")
        now = time.time()
        times: dict[str, int] = {}
        for name in ("exp", "iat", "nbf"):
            if name in claims:
                value = claims[name]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise Unauthenticated(f"the bearer token's {name!r} must be a number")
                times[name] = int(value)
        if times["exp"] <= now - self.leeway:
            raise Unauthenticated("the bearer token has expired; get a new one")
        for name in ("iat", "nbf"):
            if name in times and times[name] > now + self.leeway:
                raise Unauthenticated(f"the bearer token is not valid yet ({name} is ahead)")
        if claims["iss"] != self.issuer:
            raise Unauthenticated("the bearer token was refused: it is from another issuer")
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self.audience not in audiences:
            raise Unauthenticated("the bearer token was refused: it is for another audience")

    async def _key_for(self, kid: str | None) -> Any:
        if self._jwks is not None:
            if not kid:
                raise Unauthenticated("the bearer token has no 'kid' header")
            try:
                # PyJWKClient fetches over blocking HTTP on a cache miss.
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key, kid)
            except jwt.PyJWKClientError as error:
                raise Unauthenticated(f"no signing key for kid {kid!r}: {error}") from None
            return signing_key.key
        if self._keys is None:
            assert self._key_file is not None
            self._keys = KeySet.from_file(self._key_file)
        key = self._keys.get(kid)
        if key is None:
            # The key file may have been rotated since it was read.
            assert self._key_file is not None
            self._keys = KeySet.from_file(self._key_file)
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated(f"no signing key for kid {kid!r}")
        return key


class LocalSigner:
    """The signing key of a local run, generated once per data directory.

    `keys/signing.pem` holds the private key (mode 0600); `keys/signing.jwks.json` the public
    JWKS the services verify against.
    """

    def __init__(
        self, private_key: ec.EllipticCurvePrivateKey, kid: str, issuer: str, audience: str
    ):
        self._private_key = private_key
        self.kid = kid
        self.issuer = issuer
        self.audience = audience

    @classmethod
    def ensure(
        cls, data_dir: Path, *, issuer: str = "studyhall-local", audience: str = "studyhall"
    ) -> LocalSigner:
        keys = data_dir / "keys"
        private_path = keys / "signing.pem"
        if not private_path.exists():
            keys.mkdir(parents=True, exist_ok=True)
            private_key = ec.generate_private_key(ec.SECP256R1())
            pem = private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
        loaded = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{private_path} is not an EC private key")
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(loaded.public_key()))
        kid = _thumbprint(jwk)
        jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
        public_path = keys / "signing.jwks.json"
        document = json.dumps({"keys": [jwk]}, indent=2)
        if not public_path.exists() or public_path.read_text() != document:
            public_path.write_text(document)
        return cls(loaded, kid, issuer, audience)

    def mint(self, user_id: str, *, operator: bool = False, ttl_seconds: int = 3600) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": user_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        if operator:
            claims[OPERATOR_CLAIM] = True
        return jwt.encode(claims, self._private_key, algorithm="ES256", headers={"kid": self.kid})


def _thumbprint(jwk: dict[str, Any]) -> str:
    # RFC 7638 thumbprint of an EC key: a stable kid that changes when the key does.
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_part(part: str) -> dict[str, Any]:
    value = json.loads(_b64decode(part))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
