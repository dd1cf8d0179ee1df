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
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
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
    # The bearer token it was verified from: forwarded when a service asks another on the
    # caller's behalf (a segment's members), so the other applies the caller's rights.
    token: str = field(default="", compare=False, repr=False)


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
        for name in algorithms:
            jwt.get_algorithm_by_name(name)  # NotImplementedError for an unknown algorithm
        self.leeway = leeway_seconds
        self._key_file = key_file
        self._keys: KeySet | None = None
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self.cache_size = cache_size
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()
        # Every token signed with one key has the same header segment: its (alg, kid), once
        # read and checked, is reused, so a fresh token is parsed once, by PyJWT's decode
        # (jwt.get_unverified_header loads the whole token: ~17 µs of ~95 for an ES256 one).
        self._headers: dict[str, tuple[str, str | None]] = {}

    async def verify(self, token: str) -> Identity:
        cached = self._verified.get(token)
        if cached is not None:
            identity, expires = cached
            if time.time() < expires:
                return identity
            del self._verified[token]
        identity = replace(await self._verify(token), token=token)
        # A client reuses its token for many calls; verifying the signature once per token
        # instead of once per call is most of the cost of a light RPC.
        self._verified[token] = (identity, float(identity.claims["exp"]))
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return identity

    async def _verify(self, token: str) -> Identity:
        alg, kid = self._header(token)
        key = await self._key_for(kid)
        try:
            decoded = jwt.decode_complete(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options=_DECODE_OPTIONS,
            )
        except jwt.PyJWTError as error:
            raise _refusal(error, alg) from None
        except (TypeError, AttributeError):
            # PyJWT raises TypeError when the key is of another family than the algorithm
            # (an RSA key named by the `kid` of an ES256 token).
            raise Unauthenticated(
                f"the bearer token's algorithm {alg} does not match its key"
            ) from None
        except (ValueError, OverflowError, RecursionError):
            raise Unauthenticated("malformed bearer token: its contents cannot be read") from None
        return _identity(decoded["payload"])

    def _header(self, token: str) -> tuple[str, str | None]:
        if not token.isascii():  # base64url and dots only
            raise Unauthenticated(_NOT_COMPACT)
        header_part = token.partition(".")[0]
        known = self._headers.get(header_part)
        if known is not None:
            return known
        known = self._read_header(token)
        if len(self._headers) >= _HEADER_CACHE_SIZE:
            del self._headers[next(iter(self._headers))]
        self._headers[header_part] = known
        return known

    def _read_header(self, token: str) -> tuple[str, str | None]:
        """The token's algorithm and `kid`, read (unverified) to choose the key.

        PyJWT refuses a non-string `kid` and a `crit` naming an extension it does not
        support; the checks here also hold on PyJWT versions that do not, and refuse the
        one extension PyJWT does support (`b64`, a detached payload), which this verifier
        never uses.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as error:
            raise _malformed(error) from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"the bearer token's header was refused: {error}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise Unauthenticated(
                f"token algorithm {_shown(alg)} is not accepted; use one of {self.algorithms}"
            )
        if "crit" in header:
            raise Unauthenticated(
                "the bearer token's header was refused: it lists critical extensions "
                f"('crit': {_shown(header['crit'])}) and this service supports none"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated(
                f"the bearer token's 'kid' header must be a string, not {_json_kind(kid)}"
            )
        return alg, kid

    async def _key_for(self, kid: str | None) -> Any:
        if self._jwks is not None:
            if not kid:
                raise Unauthenticated("the bearer token has no 'kid' header")
            try:
                # PyJWKClient fetches over blocking HTTP on a cache miss.
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key, kid)
            except jwt.PyJWKClientError as error:
                raise Unauthenticated(f"no signing key for kid {_shown(kid)}: {error}") from None
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
            raise Unauthenticated(f"no signing key for kid {_shown(kid)}")
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


# PyJWT checks the signature, `exp`/`iat`/`nbf` against the clock (with the leeway), the
# issuer, the audience, and that these claims are present.
_DECODE_OPTIONS: jwt.types.Options = {"require": ["exp", "iat", "sub", "iss", "aud"]}

_HEADER_CACHE_SIZE = 64

_NOT_COMPACT = "malformed bearer token: not a JWS compact token (header.payload.signature)"

# Seconds since 1970 up to the end of year 9999: what a datetime can hold.
_MAX_TIME = 253_402_300_799

MAX_SUBJECT_LENGTH = 200
# C0 and C1 control characters (NUL among them: PostgreSQL text refuses it) and lone
# surrogates (not encodable as UTF-8).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _identity(claims: dict[str, Any]) -> Identity:
    """What PyJWT leaves unchecked: times that are finite JSON numbers (PyJWT takes `int()`
    of them, so accepts "123", true and 10**400), and a subject fit to store."""
    for name in ("exp", "iat", "nbf"):
        if name in claims:
            value = claims[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not -_MAX_TIME <= value <= _MAX_TIME  # also false for NaN
            ):
                raise Unauthenticated(
                    f"the bearer token's {name!r} must be a number of seconds since 1970, "
                    f"not {_json_kind(value)}"
                )
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("the bearer token has no subject")
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise Unauthenticated(
            f"the bearer token's subject is {len(subject)} characters long; "
            f"the most is {MAX_SUBJECT_LENGTH}"
        )
    if _UNPRINTABLE.search(subject):
        raise Unauthenticated(
            "the bearer token's subject contains a control character or invalid text"
        )
    return Identity(user_id=subject, operator=claims.get(OPERATOR_CLAIM) is True, claims=claims)


def _refusal(error: jwt.PyJWTError, alg: str) -> Unauthenticated:
    """PyJWT's verdict on a token, said to the person holding it."""
    match error:
        case jwt.ExpiredSignatureError():
            return Unauthenticated("the bearer token has expired; get a new one")
        case jwt.ImmatureSignatureError():
            which = next((n for n in ("iat", "nbf") if f"({n})" in str(error)), "iat or nbf")
            return Unauthenticated(f"the bearer token is not valid yet ({which} is ahead)")
        case jwt.InvalidSignatureError():
            return Unauthenticated("the bearer token was refused: its signature does not verify")
        case jwt.MissingRequiredClaimError():
            return Unauthenticated(f"the bearer token was refused: it has no {error.claim!r} claim")
        case jwt.InvalidIssuerError():
            return Unauthenticated("the bearer token was refused: it is from another issuer")
        case jwt.InvalidAudienceError():
            return Unauthenticated("the bearer token was refused: it is for another audience")
        case jwt.InvalidKeyError() | jwt.InvalidAlgorithmError():
            return Unauthenticated(f"the bearer token's algorithm {alg} does not match its key")
        case jwt.DecodeError():
            return _malformed(error)
        case _:
            return Unauthenticated(f"the bearer token was refused: {error}")


def _malformed(error: jwt.DecodeError) -> Unauthenticated:
    # PyJWT's text mostly says what is wrong ("Invalid payload string: ...", "Expiration
    # Time claim (exp) must be an integer."); two of its phrasings are put plainer here.
    text = str(error)
    if text == "Not enough segments":
        return Unauthenticated(_NOT_COMPACT)
    garbled = re.fullmatch(r"Invalid (header|payload|crypto) padding", text)
    if garbled:
        part = "signature" if garbled[1] == "crypto" else garbled[1]
        text = f"its {part} is not base64url"
    return Unauthenticated(f"malformed bearer token: {text}")


def _json_kind(value: object) -> str:
    match value:
        case bool():
            return "true or false"
        case str():
            return "a string"
        case list():
            return "a JSON array"
        case dict():
            return "a JSON object"
        case None:
            return "null"
        case _:
            return "a number out of range" if isinstance(value, int | float) else "that"


def _shown(value: object, limit: int = 60) -> str:
    """A header value quoted back to the caller, cut short."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
