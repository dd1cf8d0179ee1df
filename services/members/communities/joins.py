"""Joining a community, with the joins that arrive together committed together.

A join is a few indexed reads and one or two writes; what it pays for is the transaction
around them: BEGIN, the commit that waits for the disk, and the driver's overhead per
statement. Joins that arrive while a transaction is open wait for the next one, so under
load one transaction and about six statements carry a whole group of joins, while a lone
join still commits at once (the kit's GroupCommitter, decision 0011).

A group gives the same answers as its joins one by one: each is decided in arrival order
against what the joins before it did, a refusal changes nothing, and when the transaction
itself fails every join in it is tried again alone, so one join's failure is its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import Database
from services.kit.errors import DomainError, FailedPrecondition, NotFound
from services.kit.groups import GroupCommitter
from services.kit.idempotency import (
    IdempotencyKey,
    IdempotentWriter,
    Recorded,
    fingerprint,
    replay,
)
from services.members.communities import domain, invites
from services.members.communities.events import CommunityEvents
from services.members.communities.messages import join_request_to_proto, membership_to_proto
from services.members.communities.store import (
    CommunityRepository,
    InviteRepository,
    JoinRequestRepository,
)
from studyhall.members.v1 import members_service_pb2 as pb

METHOD = "JoinCommunity"

Pair = tuple[str, str]  # (community id, user id)


@dataclass(frozen=True)
class JoinCommand:
    """One caller's validated JoinCommunity request."""

    user_id: str
    community_id: str
    answers: list[str]
    invite_code: str
    accepted_rules_version: int
    key: IdempotencyKey
    # The request's fingerprint when it carries a request id, else "".
    digest: str = ""
    # The caller's trace, continued by the event the join publishes.
    trace: Context = field(default_factory=otel_context.get_current)

    @classmethod
    def of(cls, user_id: str, request: pb.JoinCommunityRequest) -> JoinCommand:
        return cls(
            user_id=user_id,
            community_id=request.community_id,
            answers=list(request.answers),
            invite_code=request.invite_code,
            accepted_rules_version=int(request.accepted_rules_version),
            key=IdempotencyKey(user_id, METHOD, request.request_id),
            digest=fingerprint(request) if request.request_id else "",
        )

    @property
    def pair(self) -> Pair:
        return (self.community_id, self.user_id)


class Joins:
    """Takes join commands from concurrent callers and commits them in groups (the kit's
    GroupCommitter); what is join-specific is how one group is read, decided and written."""

    def __init__(self, database: Database, idempotent: IdempotentWriter) -> None:
        self.database = database
        self.idempotent = idempotent
        self.committer: GroupCommitter[JoinCommand, pb.JoinCommunityResponse] = GroupCommitter(
            database, self._commit, on_commit=lambda: self.idempotent.on_commit()
        )

    async def join(self, command: JoinCommand) -> pb.JoinCommunityResponse:
        return await self.committer.submit(command)

    async def _commit(
        self, session: AsyncSession, commands: list[JoinCommand]
    ) -> list[pb.JoinCommunityResponse | DomainError]:
        """Decide and store `commands` in the group's transaction; a refusal is returned in
        place of its response and stores nothing."""
        group = _Group(session, self.idempotent)
        await group.read(commands)
        outcomes: list[pb.JoinCommunityResponse | DomainError] = []
        for command in commands:
            try:
                outcomes.append(await group.decide(command))
            except DomainError as refusal:
                outcomes.append(refusal)
        await group.write()
        return outcomes


class _Group:
    """What one transaction of joins has read, decided and has yet to write."""

    def __init__(self, session: AsyncSession, idempotent: IdempotentWriter) -> None:
        self.session = session
        self.idempotent = idempotent
        self.communities: dict[str, domain.Community] = {}
        self.members: dict[Pair, domain.Membership] = {}
        self.requests: dict[Pair, domain.JoinRequest] = {}
        self.recorded: dict[IdempotencyKey, Recorded] = {}
        self.joined: list[tuple[domain.Membership, Context]] = []
        self.requested: list[tuple[domain.JoinRequest, Context]] = []
        self.results: list[tuple[IdempotencyKey, str, pb.JoinCommunityResponse]] = []

    async def read(self, commands: list[JoinCommand]) -> None:
        """Everything the group's decisions need, a statement per table."""
        communities = CommunityRepository(self.session)
        self.recorded = await self.idempotent.recorded(
            self.session, METHOD, [command.key for command in commands]
        )
        self.communities = await communities.get_many({c.community_id for c in commands})
        pairs = {command.pair for command in commands}
        self.members = await communities.memberships_of(pairs)
        # Only communities that review applicants keep requests: elsewhere, no read.
        reviewed = {
            pair
            for pair in pairs
            if (community := self.communities.get(pair[0])) is not None
            and community.join_policy is domain.JoinPolicy.APPROVAL
        }
        self.requests = await JoinRequestRepository(self.session).get_many(reviewed)

    async def decide(self, command: JoinCommand) -> pb.JoinCommunityResponse:
        key = command.key
        if key in self.recorded:
            return replay(key, command.digest, self.recorded[key], pb.JoinCommunityResponse)
        community = self.communities.get(command.community_id)
        current = self.members.get(command.pair)
        invite = await self._invite_for(community, command.invite_code)
        if community is None or not (
            community.visible_to_outsiders()
            or (current is not None and current.active)
            or invite is not None
        ):
            raise NotFound(f"community {command.community_id} not found")
        if invite is not None:
            invites.check_usable(invite)
        outcome = domain.apply_to_join(
            community,
            current,
            self.requests.get(command.pair),
            command.user_id,
            command.answers,
            accepted_rules=command.accepted_rules_version,
            invited=invite is not None,
        )
        if isinstance(outcome, domain.JoinRequest):
            self.requests[command.pair] = outcome
            self.requested.append((outcome, command.trace))
            response = pb.JoinCommunityResponse(join_request=join_request_to_proto(outcome))
        else:
            if invite is not None and not await InviteRepository(self.session).use(
                invite, datetime.now(UTC)
            ):
                raise FailedPrecondition("this invite has just been used up; ask for a new one")
            self.members[command.pair] = outcome
            self.joined.append((outcome, command.trace))
            response = pb.JoinCommunityResponse(
                membership=membership_to_proto(outcome, community.rules_version)
            )
        if key.request_id:
            # A repeat of the key later in the group replays this answer.
            self.recorded[key] = Recorded(command.digest, response.SerializeToString())
            self.results.append((key, command.digest, response))
        return response

    async def write(self) -> None:
        events = CommunityEvents(self.session)
        if self.joined:
            memberships = [membership for membership, _ in self.joined]
            await CommunityRepository(self.session).save_memberships(memberships)
            await events.members_joined(memberships, [trace for _, trace in self.joined])
        requests = JoinRequestRepository(self.session)
        for request, trace in self.requested:
            await requests.save(request)
            await events.join_requested(request, trace)
        await self.idempotent.record(self.session, self.results)

    async def _invite_for(
        self, community: domain.Community | None, code: str
    ) -> invites.Invite | None:
        """The community's invite with `code`; NOT_FOUND for a code it never issued, worded
        the same whether or not the community exists, so a code reveals no private one."""
        if not code:
            return None
        found = (
            await InviteRepository(self.session).by_code(community.id, invites.code_hash(code))
            if community is not None
            else None
        )
        if found is None:
            raise NotFound("that invite code is not valid for this community; ask for a new link")
        return found
