"""Joining a community, with the joins that arrive together committed together.

A join is a few indexed reads and one or two writes; what it pays for is the transaction
around them: BEGIN, the commit that waits for the disk, and the driver's overhead per
statement. Joins that arrive while a transaction is open wait for the next one, so under
load one transaction and about six statements carry a whole group of joins, while a lone
join still commits at once (decision 0011).

A group gives the same answers as its joins one by one: each is decided in arrival order
against what the joins before it did, a refusal changes nothing, and when the transaction
itself fails every join in it is tried again alone, so one join's failure is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import Database
from services.kit.errors import Aborted, DomainError, FailedPrecondition, NotFound
from services.kit.idempotency import (
    ATTEMPTS,
    RETRY_JITTER_SECONDS,
    IdempotencyKey,
    IdempotentWriter,
    Recorded,
    contended,
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
# Bounds one transaction's statements (about ten parameters per join in the largest).
MAX_GROUP = 128
# How long the first join of a group waits for others under load, and how long without a
# join counts as quiet, when a join commits at once.
GATHER_SECONDS = 0.010
QUIET_SECONDS = 0.05

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


Outcome = pb.JoinCommunityResponse | BaseException


class Joins:
    """Takes join commands from concurrent callers and commits them in groups."""

    def __init__(self, database: Database, idempotent: IdempotentWriter) -> None:
        self.database = database
        self.idempotent = idempotent
        self._waiting: list[tuple[JoinCommand, asyncio.Future[pb.JoinCommunityResponse]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._full = asyncio.Event()
        self._last_arrival = float("-inf")

    async def join(self, command: JoinCommand) -> pb.JoinCommunityResponse:
        now = time.monotonic()
        quiet = now - self._last_arrival > QUIET_SECONDS
        self._last_arrival = now
        future: asyncio.Future[pb.JoinCommunityResponse] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append((command, future))
        if len(self._waiting) >= MAX_GROUP:
            self._full.set()
        if self._committer is None:
            # An empty context: the committer serves many callers and belongs to no one's
            # trace; each event carries its own caller's (JoinCommand.trace).
            self._committer = asyncio.create_task(
                self._commit_waiting(gather=not quiet), context=contextvars.Context()
            )
        return await future

    async def _commit_waiting(self, *, gather: bool) -> None:
        try:
            while self._waiting:
                if gather:
                    await self._gather()
                # Whoever waits now came during a transaction: joins are arriving.
                gather = True
                group = [item for item in self._waiting[:MAX_GROUP] if not item[1].done()]
                del self._waiting[:MAX_GROUP]
                if group:
                    await self._settle(group)
        finally:
            self._committer = None

    async def _gather(self) -> None:
        """Wait a moment for more joins to share the transaction.

        The gRPC server takes in calls one at a time, each after the event loop's turn in
        which the one before it was handled: under load joins arrive one after another
        even when many callers wait, and without a wait none would ever find another to
        share a transaction with. A join after a quiet spell does not wait (see `join`)."""
        self._full.clear()
        if len(self._waiting) >= MAX_GROUP:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GATHER_SECONDS):
                await self._full.wait()

    async def _settle(
        self, group: list[tuple[JoinCommand, asyncio.Future[pb.JoinCommunityResponse]]]
    ) -> None:
        commands = [command for command, _ in group]
        try:
            outcomes = await self._commit(commands)
        except asyncio.CancelledError:
            for _, future in group:
                future.cancel()
            raise
        except Exception as error:
            if len(group) > 1:
                # Whose join broke the transaction is unknown: each goes again on its own.
                for item in group:
                    await self._settle([item])
                return
            # Alone, a lost race (a replica committed the same request id or membership
            # meanwhile) is settled by running again on fresh rows; anything else is its own.
            outcomes = await self._again(commands) if contended(error) else [error]
        committed = False
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():
                continue  # the caller gave up waiting; the join stands
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
                committed = True
        if committed:
            self.idempotent.on_commit()

    async def _again(self, commands: list[JoinCommand]) -> list[Outcome]:
        """Run a join that lost a race again, as IdempotentWriter runs any write."""
        for attempt in range(2, ATTEMPTS + 1):
            await asyncio.sleep(random.uniform(0, RETRY_JITTER_SECONDS * attempt))
            try:
                return await self._commit(commands)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not contended(error):
                    return [error for _ in commands]
        aborted = Aborted("the join lost a race with concurrent changes too often; retry it")
        return [aborted for _ in commands]

    async def _commit(self, commands: list[JoinCommand]) -> list[Outcome]:
        """Decide and store `commands` in one transaction; a refusal is returned in place of
        its response and stores nothing."""
        async with self.database.write() as session:
            group = _Group(session, self.idempotent)
            await group.read(commands)
            outcomes: list[Outcome] = []
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
