"""The members of a segment, asked of the members service on a caller's behalf.

A service that aims something at a segment (recommend a path, invite to an activity, send a
survey, offer a coupon) snapshots the segment's members at the moment a moderator or admin
acts: it pages ListSegmentMembers with that caller's own token, so members applies the
caller's rights (moderators and above may list a segment), and stores the user ids with what
it aimed. The snapshot does not follow the segment afterwards; MemberErased removes a user
from every snapshot a service keeps. There is no service-to-service credential: a snapshot
is always taken for someone who may take it.
"""

from __future__ import annotations

import grpc

from services.kit.auth import Identity
from services.kit.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from services.kit.paging import MAX_PAGE_SIZE
from studyhall.members.v1 import profiles_service_pb2 as profiles_pb
from studyhall.members.v1 import profiles_service_pb2_grpc as profiles_grpc

# A snapshot larger than this is refused rather than held: aim at a narrower segment.
MAX_SNAPSHOT = 100_000

# What members answers that the caller can act on passes through as its own kind.
_PASSED_ON: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


async def segment_members(
    channel: grpc.aio.Channel,
    caller: Identity,
    community_id: str,
    segment_id: str,
    *,
    timeout_seconds: float = 10.0,
) -> list[str]:
    """Every user id in the segment now, paging with the caller's token."""
    stub = profiles_grpc.ProfilesServiceStub(channel)
    metadata = (("authorization", f"Bearer {caller.token}"),)
    members: list[str] = []
    token = ""
    while True:
        try:
            reply = await stub.ListSegmentMembers(
                profiles_pb.ListSegmentMembersRequest(
                    community_id=community_id,
                    segment_id=segment_id,
                    page_size=MAX_PAGE_SIZE,
                    page_token=token,
                ),
                metadata=metadata,
                timeout=timeout_seconds,
            )
        except grpc.aio.AioRpcError as error:
            raise _refusal(error, segment_id) from None
        members.extend(reply.user_ids)
        if len(members) > MAX_SNAPSHOT:
            raise FailedPrecondition(
                f"segment {segment_id} has more than {MAX_SNAPSHOT} members; aim at a narrower one"
            )
        token = reply.next_page_token
        if not token:
            return members


def _refusal(error: grpc.aio.AioRpcError, segment_id: str) -> DomainError:
    details = error.details() or ""
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument.field("segment_id", details)
    kind = _PASSED_ON.get(error.code())
    if kind is not None:
        return kind(f"segment {segment_id}: {details}")
    return Unavailable(f"the members service could not list segment {segment_id} now; retry")
