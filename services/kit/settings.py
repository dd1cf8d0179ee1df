"""Settings from environment variables, one typed object per service.

Shared settings (NATS, Redis, auth, data directory) are read from `STUDYHALL_*`; a service's
own settings from `STUDYHALL_<SERVICE>_*`, so one environment can configure all five
processes. A bad or missing value stops the process with one line naming the variable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar, Literal, NoReturn, TypeVar

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kit.events.connection import NatsAuth
from services.kit.events.streams import StreamLimits
from services.kit.ratelimit import parse_limits

SHARED_PREFIX = "STUDYHALL_"


class ServiceSettings(BaseSettings):
    """Settings common to every service. Subclasses set `service` and their defaults."""

    service: ClassVar[str] = ""
    default_grpc_port: ClassVar[int] = 0
    default_metrics_port: ClassVar[int] = 0

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)

    data_dir: Path = Field(
        Path(".studyhall"),
        validation_alias=AliasChoices("STUDYHALL_DATA_DIR"),
        description="Directory for SQLite files and the local signing key.",
    )
    nats_url: str = Field(
        "nats://127.0.0.1:14222",
        validation_alias=AliasChoices("STUDYHALL_NATS_URL"),
        description="NATS server(s) with JetStream, comma separated.",
    )
    nats_user: str = Field(
        "",
        validation_alias=AliasChoices("STUDYHALL_NATS_USER"),
        description="User to authenticate to NATS as (empty: none; the prod overlay sets it).",
    )
    nats_password: str = Field(
        "",
        validation_alias=AliasChoices("STUDYHALL_NATS_PASSWORD"),
        description="Password of `STUDYHALL_NATS_USER` (from a Secret in Kubernetes).",
    )
    nats_tls_ca_file: str = Field(
        "",
        validation_alias=AliasChoices("STUDYHALL_NATS_TLS_CA_FILE"),
        description="CA certificate (PEM) to verify NATS servers by; set, TLS is used.",
    )
    nats_tls_cert_file: str = Field(
        "",
        validation_alias=AliasChoices("STUDYHALL_NATS_TLS_CERT_FILE"),
        description="Client certificate (PEM) for NATS servers that verify clients.",
    )
    nats_tls_key_file: str = Field(
        "",
        validation_alias=AliasChoices("STUDYHALL_NATS_TLS_KEY_FILE"),
        description="Private key (PEM) of `STUDYHALL_NATS_TLS_CERT_FILE`.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:16379/0",
        validation_alias=AliasChoices("STUDYHALL_REDIS_URL"),
        description="Redis for caches, leaderboards and rate limits (never the record).",
    )
    auth_issuer: str = Field(
        "studyhall-local",
        validation_alias=AliasChoices("STUDYHALL_AUTH_ISSUER"),
        description="Expected `iss` of bearer tokens.",
    )
    auth_audience: str = Field(
        "studyhall",
        validation_alias=AliasChoices("STUDYHALL_AUTH_AUDIENCE"),
        description="Expected `aud` of bearer tokens.",
    )
    auth_jwks_url: str = Field(
        "",
        validation_alias=AliasChoices("STUDYHALL_AUTH_JWKS_URL"),
        description="JWKS endpoint of the identity provider (production).",
    )
    auth_key_file: Path | None = Field(
        None,
        validation_alias=AliasChoices("STUDYHALL_AUTH_KEY_FILE"),
        description="Public key (PEM) or JWKS file; defaults to DATA_DIR/keys/signing.jwks.json.",
    )
    auth_algorithms: str = Field(
        "ES256,RS256",
        validation_alias=AliasChoices("STUDYHALL_AUTH_ALGORITHMS"),
        description="Accepted token algorithms, comma separated (never `none` or HS*).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        validation_alias=AliasChoices("STUDYHALL_LOG_LEVEL"),
        description="Log level of the JSON logs on stderr.",
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices("STUDYHALL_SHUTDOWN_GRACE_SECONDS"),
        description="How long SIGTERM waits for calls in flight before cancelling them.",
    )

    relay: Literal["embedded", "external"] = Field(
        "embedded",
        validation_alias=AliasChoices("STUDYHALL_RELAY"),
        description="`external`: the outbox relay runs as its own process (`python -m "
        "services.<service> relay`) instead of inside the service.",
    )
    consumers: Literal["embedded", "external"] = Field(
        "embedded",
        validation_alias=AliasChoices("STUDYHALL_CONSUMERS"),
        description="`external`: event consumers run as their own process (`python -m "
        "services.<service> consume`) instead of inside the service.",
    )
    stream_replicas: int = Field(
        1,
        ge=1,
        le=5,
        validation_alias=AliasChoices("STUDYHALL_STREAM_REPLICAS"),
        description="Replicas of each JetStream stream (3 on a production cluster).",
    )
    stream_max_age_seconds: float = Field(
        0,
        ge=0,
        validation_alias=AliasChoices("STUDYHALL_STREAM_MAX_AGE_SECONDS"),
        description="How long streams keep events; 0 keeps them (projections rebuild from them).",
    )
    stream_max_bytes: int = Field(
        -1,
        ge=-1,
        validation_alias=AliasChoices("STUDYHALL_STREAM_MAX_BYTES"),
        description="Size limit of each stream; -1 for none.",
    )
    stream_duplicate_window_seconds: float = Field(
        120,
        gt=0,
        validation_alias=AliasChoices("STUDYHALL_STREAM_DUPLICATE_WINDOW_SECONDS"),
        description="JetStream drops a repeated event id within this window (inbox: the rest).",
    )

    rate_limit_per_caller: str = Field(
        "50/second",
        validation_alias=AliasChoices("STUDYHALL_RATE_LIMIT_PER_CALLER"),
        description="Calls one caller may make to one service, in any moving window: "
        "`N/second`, `N/minute`, ... (several separated by `;`); empty for no limit. Over "
        "it: RESOURCE_EXHAUSTED with the delay to wait.",
    )
    rate_limit_per_community: str = Field(
        "500/second",
        validation_alias=AliasChoices("STUDYHALL_RATE_LIMIT_PER_COMMUNITY"),
        description="Calls naming one community that one service takes from everyone "
        "together, in the same notation; empty for no limit. Limits are kept in Redis and "
        "not enforced while it is down.",
    )

    # Service-specific settings: read from STUDYHALL_<SERVICE>_<NAME> (prefix set per class).
    database_url: str = Field(
        "", description="SQLAlchemy URL of the service's own database; SQLite under DATA_DIR."
    )
    grpc_host: str = Field("127.0.0.1", description="Address the gRPC server binds.")
    grpc_port: int = Field(0, ge=0, le=65535, description="gRPC port.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus endpoint port.")
    database_tls: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = Field(
        "prefer", description="TLS mode for PostgreSQL (libpq sslmode semantics)."
    )
    database_tls_root_cert: Path | None = Field(
        None, description="CA bundle that verifies the PostgreSQL server."
    )

    @field_validator("auth_algorithms")
    @classmethod
    def _only_asymmetric(cls, value: str) -> str:
        algorithms = [a.strip() for a in value.split(",") if a.strip()]
        allowed = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"}
        bad = [a for a in algorithms if a not in allowed]
        if not algorithms or bad:
            raise ValueError(
                f"use asymmetric algorithms from {sorted(allowed)}; got {bad or value}"
            )
        return ",".join(algorithms)

    @field_validator("rate_limit_per_caller", "rate_limit_per_community")
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        try:
            parse_limits(value)
        except ValueError:
            raise ValueError(
                "expected limits such as 50/second or 20/second;600/minute, or empty for none"
            ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("expected a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
        return value

    @model_validator(mode="after")
    def _nats_auth_whole(self) -> ServiceSettings:
        if self.nats_password and not self.nats_user:
            raise ValueError("STUDYHALL_NATS_PASSWORD is set without STUDYHALL_NATS_USER")
        if bool(self.nats_tls_cert_file) != bool(self.nats_tls_key_file):
            raise ValueError(
                "STUDYHALL_NATS_TLS_CERT_FILE and STUDYHALL_NATS_TLS_KEY_FILE go together"
            )
        for name in ("nats_tls_ca_file", "nats_tls_cert_file", "nats_tls_key_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"STUDYHALL_{name.upper()}: no file at {path}")
        return self

    def effective_grpc_port(self) -> int:
        return self.grpc_port or self.default_grpc_port

    def effective_metrics_port(self) -> int:
        return self.metrics_port or self.default_metrics_port

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.service}.db').resolve()}"

    def effective_key_file(self) -> Path:
        return self.auth_key_file or self.data_dir / "keys" / "signing.jwks.json"

    def nats_auth(self) -> NatsAuth:
        return NatsAuth(
            user=self.nats_user,
            password=self.nats_password,
            tls_ca_file=self.nats_tls_ca_file,
            tls_cert_file=self.nats_tls_cert_file,
            tls_key_file=self.nats_tls_key_file,
        )

    def stream_limits(self) -> StreamLimits:
        return StreamLimits(
            replicas=self.stream_replicas,
            max_age_seconds=self.stream_max_age_seconds,
            max_bytes=self.stream_max_bytes,
            duplicate_window_seconds=self.stream_duplicate_window_seconds,
        )

    @property
    def algorithms(self) -> list[str]:
        return self.auth_algorithms.split(",")


def env_prefix(service: str) -> str:
    return f"{SHARED_PREFIX}{service.upper()}_"


def service_config(service: str) -> SettingsConfigDict:
    """Model config of a service's settings: its own variables carry its prefix."""
    return SettingsConfigDict(
        env_prefix=env_prefix(service),
        extra="ignore",
        case_sensitive=False,
        frozen=True,
        populate_by_name=True,
    )


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def env_name(cls: type[ServiceSettings], field: str) -> str:
    """The environment variable that sets `field` of `cls`."""
    info = cls.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return env_prefix(cls.service) + field.upper()


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Read settings; on a bad value print one line naming the variable and exit 2."""
    try:
        return cls()
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = env_name(cls, field) if field in cls.model_fields else field
        shown = f"={first['input']!r}" if isinstance(first.get("input"), str | int) else ""
        _die(f"{cls.service or 'studyhall'}: invalid setting {name}{shown}: {first['msg']}")


def _die(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(2)
