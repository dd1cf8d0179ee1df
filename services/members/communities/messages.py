"""Community records as protobuf messages: the API's answers, and the joins' (which
answer callers from a group commit)."""

from __future__ import annotations

from services.kit.timestamps import timestamp
from services.members.communities import domain
from studyhall.members.v1 import members_service_pb2 as pb


def membership_to_proto(membership: domain.Membership, rules_version: int) -> pb.Membership:
    """`rules_version` is the community's current one, against which acceptance is judged."""
    return pb.Membership(
        community_id=membership.community_id,
        user_id=membership.user_id,
        role=pb.Role.ValueType(membership.role),
        join_time=timestamp(membership.joined_at),
        version=membership.version,
        active=membership.active,
        muted_until=timestamp(membership.muted_until) if membership.muted_until else None,
        banned_until=timestamp(membership.banned_until) if membership.banned_until else None,
        accepted_rules_version=membership.accepted_rules_version,
        rules_accepted=membership.accepted_rules_version >= rules_version,
    )


def community_to_proto(community: domain.Community) -> pb.Community:
    return pb.Community(
        id=community.id,
        name=community.name,
        slug=community.slug,
        topic=community.topic,
        mission=community.mission,
        audience=community.audience,
        tags=community.tags,
        visibility=pb.Visibility.ValueType(community.visibility),
        join_policy=pb.JoinPolicy.ValueType(community.join_policy),
        owner_user_id=community.owner_user_id,
        create_time=timestamp(community.created_at),
        version=community.version,
        etag=community.etag,
        locale=community.locale,
        time_zone=community.time_zone,
        archive_time=timestamp(community.archived_at) if community.archived_at else None,
        join_questions=community.join_questions,
    )


def join_request_to_proto(request: domain.JoinRequest) -> pb.JoinRequest:
    return pb.JoinRequest(
        community_id=request.community_id,
        user_id=request.user_id,
        answers=request.answers,
        state=pb.JoinRequestState.ValueType(request.state),
        create_time=timestamp(request.created_at),
        reviewer_user_id=request.reviewer_user_id,
        review_time=timestamp(request.reviewed_at) if request.reviewed_at else None,
        reason=request.reason,
    )
