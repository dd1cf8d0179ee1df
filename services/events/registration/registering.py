"""Registering, with the registrations that arrive together committed together.

Registrations come in bursts for the same activity (the announcement goes out, everyone
answers at once). Each is a few indexed reads and writes; what it pays for is the
transaction and the statements around them. Registrations that arrive while a transaction
is open wait for the next one (the kit's GroupCommitter, decision 0011), and a group reads
what it needs with one statement per table (the idempotency keys, the activities with their
counters, the callers' earlier registrations) and writes with one insert per table, however
many callers it carries: a lone registration still commits at once.

A group gives the same answers as its registrations one by one: each is decided in arrival
order against the seats and the waitlist the ones before it left, a refusal changes
nothing, and when the transaction itself fails each is tried again alone. The activities'
rows are locked as they are read, so replicas deciding groups for the same activity take
turns (decision 0027: the capacity holds).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from sqlalchemy.ext.asyncio import AsyncSession

from services.events.activities.domain import Activity, activity_not_found
from services.events.activities.lookup import sees
from services.events.registration import domain
from services.events.registration.domain import Registration
from services.events.registration.events import RegistrationEvents, registered, waitlisted
from services.events.registration.messages import registration_to_proto
from services.events.registration.store import RegistrationRepository, Seats
from services.events.store.tables import scheduled_jobs
from services.kit.access import Access, Role, Standing, check_role
from services.kit.auth import Identity
from services.kit.database import Database
from services.kit.errors import DomainError
from services.kit.groups import GroupCommitter
from services.kit.idempotency import (
    IdempotencyKey,
    IdempotentWriter,
    Recorded,
    fingerprint,
    replay,
)
from services.kit.schedule import Job, Jobs
from studyhall.events.v1 import activities_service_pb2 as pb

METHOD = "Register"
JOBS = Jobs(scheduled_jobs)

Pair = tuple[str, str]  # (activity id, user id)
# Which (user id, product id) pairs of a community hold a ticket entitlement now: handed in
# by the app from the tickets capability (docs/decisions/0047).
Tickets = set[tuple[str, str]]
Entitled = Callable[[AsyncSession, str, Tickets, datetime], Awaitable[Tickets]]


async def nobody_entitled(
    session: AsyncSession, community_id: str, pairs: Tickets, now: datetime
) -> Tickets:
    return set()


@dataclass(frozen=True)
class RegisterCommand:
    """One caller's validated Register request."""

    caller: Identity
    community_id: str
    activity_id: str
    answers: Mapping[str, str]
    key: IdempotencyKey
    # The request's fingerprint when it carries a request id, else "".
    digest: str = ""
    # The caller's trace, continued by the fact the registration publishes.
    trace: Context = field(default_factory=otel_context.get_current)

    @classmethod
    def of(
        cls, caller: Identity, request: pb.RegisterRequest, answers: Mapping[str, str]
    ) -> RegisterCommand:
        return cls(
            caller=caller,
            community_id=request.community_id,
            activity_id=request.activity_id,
            answers=answers,
            key=IdempotencyKey(caller.user_id, METHOD, request.request_id),
            digest=fingerprint(request) if request.request_id else "",
        )

    @property
    def pair(self) -> Pair:
        return (self.activity_id, self.caller.user_id)


class Registering:
    def __init__(
        self,
        database: Database,
        access: Access,
        idempotent: IdempotentWriter,
        entitled: Entitled = nobody_entitled,
    ) -> None:
        self.access = access
        self.idempotent = idempotent
        self.entitled = entitled
        self.committer: GroupCommitter[RegisterCommand, pb.RegisterResponse] = GroupCommitter(
            database, self._commit, on_commit=lambda: self.idempotent.on_commit()
        )

    async def register(self, command: RegisterCommand) -> pb.RegisterResponse:
        return await self.committer.submit(command)

    async def _commit(
        self, session: AsyncSession, commands: list[RegisterCommand]
    ) -> list[pb.RegisterResponse | DomainError]:
        group = _Group(session, self.access, self.idempotent, self.entitled, datetime.now(UTC))
        await group.read(commands)
        outcomes: list[pb.RegisterResponse | DomainError] = []
        for command in commands:
            try:
                outcomes.append(group.decide(command))
            except DomainError as refusal:
                outcomes.append(refusal)
        await group.write()
        return outcomes


@dataclass
class _Counters:
    seats_taken: int
    waitlist_length: int
    waitlist_tickets: int
    changed: bool = False


class _Group:
    """What one transaction of registrations has read, decided and has yet to write."""

    def __init__(
        self,
        session: AsyncSession,
        access: Access,
        idempotent: IdempotentWriter,
        entitled: Entitled,
        now: datetime,
    ):
        self.session = session
        self.access = access
        self.idempotent = idempotent
        self.entitled = entitled
        self.now = now
        # (community id, user id, product id) of callers holding a paid activity's ticket.
        self.tickets: set[tuple[str, str, str]] = set()
        # Seats held at paid activities until paid for: each gets its expiry job.
        self.holds: list[Registration] = []
        self.standings: dict[Pair, Standing] = {}
        self.activities: dict[str, Activity] = {}
        self.counters: dict[str, _Counters] = {}
        self.registrations: dict[Pair, Registration] = {}
        self.recorded: dict[IdempotencyKey, Recorded] = {}
        self.new: list[Registration] = []
        self.reused: list[Registration] = []
        self.facts: list[tuple[Registration, Message, Context]] = []
        self.results: list[tuple[IdempotencyKey, str, pb.RegisterResponse]] = []

    async def read(self, commands: list[RegisterCommand]) -> None:
        """Everything the group's decisions need, a statement per table."""
        self.recorded = await self.idempotent.recorded(
            self.session, METHOD, [command.key for command in commands]
        )
        seats = Seats(self.session)
        # Read here, past the cache: one statement for the group instead of a cache round
        # trip (and, for a caller seen for the first time, a read) per call.
        self.standings = await self.access.standings(
            self.session, {(command.community_id, command.caller.user_id) for command in commands}
        )
        # Almost always one community and one activity; statements per community.
        for community_id in {command.community_id for command in commands}:
            wanted = {c.activity_id for c in commands if c.community_id == community_id}
            found = await seats.with_tickets(community_id, wanted)
            for activity_id, (activity, tickets) in found.items():
                self.activities[activity_id] = activity
                self.counters[activity_id] = _Counters(
                    activity.seats_taken, activity.waitlist_length, tickets
                )
        for community_id in {command.community_id for command in commands}:
            wanted_tickets = {
                (c.caller.user_id, self.activities[c.activity_id].ticket_product_id)
                for c in commands
                if c.community_id == community_id
                and c.activity_id in self.activities
                and self.activities[c.activity_id].paid
            }
            held = await self.entitled(self.session, community_id, wanted_tickets, self.now)
            self.tickets |= {(community_id, user, product) for user, product in held}
        self.registrations = await RegistrationRepository(self.session).of_members(
            {command.pair for command in commands if command.activity_id in self.activities}
        )

    def decide(self, command: RegisterCommand) -> pb.RegisterResponse:
        """The command's answer against what the group has decided so far; a refusal
        raises before anything is changed."""
        caller = command.caller
        standing = self.standings[(command.community_id, caller.user_id)]
        check_role(
            command.community_id, standing, caller, Role.MEMBER, "registering", writable=True
        )
        key = command.key
        if key in self.recorded:
            return replay(key, command.digest, self.recorded[key], pb.RegisterResponse)
        activity = self.activities.get(command.activity_id)
        if activity is None or not sees(activity, standing, caller):
            raise activity_not_found(command.activity_id, command.community_id)
        domain.check_answers(activity.questions, command.answers)
        domain.check_open(activity, self.now)
        existing = self.registrations.get(command.pair)
        registration = domain.registration_for(
            existing, activity, caller.user_id, command.answers, self.now
        )
        counters = self.counters[activity.id]
        free = activity.capacity == 0 or counters.seats_taken < activity.capacity
        if free and counters.waitlist_length == 0:
            ticket = (activity.community_id, caller.user_id, activity.ticket_product_id)
            if activity.paid and ticket not in self.tickets:
                # The seat is the member's while they pay: the ticket's grant confirms it.
                until = self.now + activity.seat_hold
                registration = domain.held(registration, until, self.now)
                self.holds.append(registration)
            else:
                registration = domain.seated(registration, self.now)
            counters.seats_taken += 1
            position = 0
            fact: Message = registered(registration)
        else:
            counters.waitlist_tickets += 1
            counters.waitlist_length += 1
            registration = domain.waitlisted(registration, counters.waitlist_tickets, self.now)
            # Tickets only grow: the newest is last in line.
            position = counters.waitlist_length
            fact = waitlisted(registration, position)
        counters.changed = True
        self.registrations[command.pair] = registration
        (self.new if existing is None else self.reused).append(registration)
        self.facts.append((registration, fact, command.trace))
        response = pb.RegisterResponse(registration=registration_to_proto(registration, position))
        if key.request_id:
            # A repeat of the key later in the group replays this answer.
            self.recorded[key] = Recorded(command.digest, response.SerializeToString())
            self.results.append((key, command.digest, response))
        return response

    async def write(self) -> None:
        repository = RegistrationRepository(self.session)
        await repository.insert_many(self.new)
        if self.reused:
            await repository.save(*self.reused)
        seats = Seats(self.session)
        for activity_id, counters in self.counters.items():
            if counters.changed:
                await seats.set_counts(
                    activity_id,
                    counters.seats_taken,
                    counters.waitlist_length,
                    counters.waitlist_tickets,
                )
        for hold in self.holds:
            assert hold.hold_until is not None
            await JOBS.set(
                self.session,
                Job(domain.EXPIRE_HOLD, hold.id, hold.community_id, hold.hold_until),
            )
        if self.facts:
            await RegistrationEvents(self.session).many(self.facts)
        await self.idempotent.record(self.session, self.results)
