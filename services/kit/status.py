"""How a refusal's kind reaches the client: its gRPC status code and rich details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from services.kit.errors import DomainError, InvalidArgument, Kind, ResourceExhausted

CODES: dict[Kind, grpc.StatusCode] = {
    Kind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.MISSING: grpc.StatusCode.NOT_FOUND,
    Kind.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    Kind.DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Kind.PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Kind.DEADLINE: grpc.StatusCode.DEADLINE_EXCEEDED,
    Kind.EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Kind.ABORTED: grpc.StatusCode.ABORTED,
    Kind.INTERNAL: grpc.StatusCode.INTERNAL,
}


def code_of(error: DomainError) -> grpc.StatusCode:
    return CODES[error.kind]


def rich_status(error: DomainError) -> status_pb2.Status:
    """The google.rpc.Status carried in `grpc-status-details-bin`."""
    return status_pb2.Status(
        code=code_of(error).value[0], message=error.message, details=_details(error)
    )


def _details(error: DomainError) -> list[any_pb2.Any]:
    if isinstance(error, InvalidArgument):
        return [
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        ]
    if isinstance(error, ResourceExhausted):
        # The standard pair of a rate limit's refusal: when to retry, and which quota.
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(error.retry_after * 1e9))
        return [
            _packed(error_details_pb2.RetryInfo(retry_delay=delay)),
            _packed(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=error.subject, description=f"at most {error.limit}"
                        )
                    ]
                )
            ),
        ]
    return []


def _packed(detail: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed
