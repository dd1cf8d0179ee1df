"""Refusals: what a rule or a handler raises when the caller can do something about it.

Each refusal carries its kind (invalid field, missing, conflict, denied, precondition, ...).
Rules raise these without knowing gRPC, so a module of pure rules may import this one; the
RPC wrapper (`services.kit.status`) turns the kind into a status at the edge. A capability
that adds a refusal picks its kind where it raises it: there is no central map to edit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar


class Kind(Enum):
    INVALID = "invalid field"
    MISSING = "missing"
    CONFLICT = "conflict"
    DENIED = "denied"
    PRECONDITION = "precondition"
    UNAUTHENTICATED = "unauthenticated"
    UNAVAILABLE = "unavailable"
    DEADLINE = "deadline"
    EXHAUSTED = "exhausted"
    ABORTED = "aborted"
    INTERNAL = "internal"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """An error the caller can do something about."""

    kind: ClassVar[Kind] = Kind.PRECONDITION

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    kind = Kind.INVALID

    def __init__(self, violations: Iterable[FieldViolation]) -> None:
        self.violations = list(violations)
        summary = "; ".join(
            f"{v.field}: {v.description}" if v.field else v.description for v in self.violations
        )
        super().__init__(f"invalid request: {summary}")

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """One field is wrong: the common case of a rule's refusal."""
        return cls([FieldViolation(field, description)])


class NotFound(DomainError):
    kind = Kind.MISSING


class AlreadyExists(DomainError):
    kind = Kind.CONFLICT


class PermissionDenied(DomainError):
    kind = Kind.DENIED


class FailedPrecondition(DomainError):
    kind = Kind.PRECONDITION


class Unauthenticated(DomainError):
    kind = Kind.UNAUTHENTICATED


class Unavailable(DomainError):
    """A dependency the call needs is down; the client may retry."""

    kind = Kind.UNAVAILABLE


class DeadlineExceeded(DomainError):
    kind = Kind.DEADLINE


class ResourceExhausted(DomainError):
    """Over a rate limit: admitted again after `retry_after` seconds."""

    kind = Kind.EXHAUSTED

    def __init__(self, message: str, *, retry_after: float, subject: str, limit: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # What was counted ("caller:<user id>", "community:<id>") and its limit.
        self.subject = subject
        self.limit = limit


class Aborted(DomainError):
    """The call lost a race with concurrent changes more times than it retries on its own;
    the client may retry it (with the same request id)."""

    kind = Kind.ABORTED


class Internal(DomainError):
    """Raised only by the RPC wrapper, for a failure that is not the caller's."""

    kind = Kind.INTERNAL
