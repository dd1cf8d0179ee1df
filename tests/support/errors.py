from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def field_violations(error: grpc.aio.AioRpcError | grpc.RpcError) -> dict[str, str]:
    """The BadRequest field violations an INVALID_ARGUMENT status carries, by field."""
    status = rpc_status.from_call(error)
    assert status is not None, "the status carries no details"
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return {violation.field: violation.description for violation in bad_request.field_violations}
