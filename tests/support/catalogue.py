"""The request catalogue: for every RPC of every service process, a request that is valid in a
small prepared world, who may send it, the least role it needs and whether it writes.

Each `tests/support/rpcs_<service>.py` describes one process (`PROCESS`): what it serves, its
tables, its `CATALOGUE` (one `Rpc` per method of every gRPC service it serves) and its
`prepare`, which builds the world through the public API (members) or through `grant` and
the service's own create RPCs (the others).

Entries of a catalogue are valid in catalogue order, each sent once: an entry that ends or
hands over something (archive, transfer, leave, delete, retire, revoke, erase) acts on a record
of the world kept for it alone, so the entries after it stay valid. Tests that use the
catalogue: tests/service/test_request_catalogue.py (every method has an entry, and every
entry succeeds) and tests/service/test_fuzz_rpcs.py (mutated and malformed requests).
"""

from __future__ import annotations

import enum
import hashlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from sqlalchemy import MetaData, text

from services.kit.access import Role
from services.kit.service import ServiceSpec
from services.kit.settings import ServiceSettings
from tests.support.services import RunningService, running_service

Metadata = list[tuple[str, str]]
# Operators act under this user id.
OPERATOR = "root"


@dataclass(frozen=True)
class World:
    """The ids the catalogue's requests need. Every service fills what its requests use."""

    community_id: str
    owner: str
    # Members: people of the community, each with the part the catalogue gives them.
    member: str = ""  # an active plain member (target of role changes, awards, reports)
    leaver: str = ""  # a member who leaves (LeaveCommunity)
    appellant: str = ""  # the member a decided report acted on (AppealReport)
    erasable: str = ""  # a member whose data an operator erases (EraseMyData)
    applicant: str = ""  # whose join request is pending (ReviewJoinRequest)
    heir: str = ""  # a member of the handover community (TransferOwnership)
    # Members: communities of the owner kept for calls that end or hand one over.
    handover_community_id: str = ""
    archive_community_id: str = ""
    # Members: records.
    invite_code: str = ""  # a usable invite of the community
    invite_id: str = ""  # an invite kept for revoking
    open_report_id: str = ""
    decided_report_id: str = ""
    attribute_key: str = ""
    retiring_attribute_key: str = ""
    segment_id: str = ""
    doomed_segment_id: str = ""
    # Content, events, billing.
    post_id: str = ""  # a published post of the owner's, with a revision, a comment, a like
    # Content: records of the owner's kept for calls that change or end one.
    topic_id: str = ""
    draft_post_id: str = ""  # SchedulePost, then PublishPost
    scheduled_post_id: str = ""  # UnschedulePost
    doomed_post_id: str = ""  # DeletePost
    deleted_post_id: str = ""  # RestorePost
    pinned_post_id: str = ""  # UnpinPost
    comment_id: str = ""  # UpdateComment
    doomed_comment_id: str = ""  # DeleteComment
    question_id: str = ""  # a question with an answer (AcceptAnswer)
    answer_id: str = ""
    accepted_question_id: str = ""  # a question with an accepted answer (UnacceptAnswer)
    activity_id: str = ""
    # Events: activities of the owner's kept for calls that change or end one.
    registered_activity_id: str = ""  # the owner holds a seat (CancelRegistration)
    held_activity_id: str = ""  # a seat is held for the owner (ConfirmSeat)
    soon_activity_id: str = ""  # starts within the hour: check-in is open (CheckIn)
    attended_activity_id: str = ""  # started, the owner checked in (SubmitFeedback)
    doomed_activity_id: str = ""  # CancelActivity
    challenge_id: str = ""  # an activity of kind challenge, not started (SetChallengeGoal)
    paid_activity_id: str = ""  # nobody registered yet (SetActivityTicket)
    product_id: str = ""
    # Content III (learning paths): a path of the owner's community with two check-in steps,
    # and the first of them; `segment_id` names a segment of the same community in members.
    path_id: str = ""
    path_step_id: str = ""
    resource_id: str = ""  # a resource of the community's library
    theme_id: str = ""  # a recurring theme of the owner's (EndTheme)
    keyword_rule_id: str = ""  # a watched word of the community (RemoveKeywordRule)
    hidable_post_id: str = ""  # a published post of the owner's (ModerateContent hides it)
    moderated_post_id: str = ""  # a post of the owner's a moderator hid (AppealModeration)
    # Billing: a paid charge of the owner's (RefundCharge) and an admin's grant to a member
    # (RevokeEntitlement).
    charge_id: str = ""
    entitlement_id: str = ""
    # Analytics: an open survey of the community sent to every member.
    survey_id: str = ""
    # Billing II: a trialing subscription of the owner's (Get, Cancel, ChangeSubscriptionPlan),
    # a canceled one (ReactivateSubscription), and a plan nobody subscribes to (the change's).
    subscription_id: str = ""
    canceled_subscription_id: str = ""
    plan_id: str = ""


def record_fields() -> list[str]:
    """The world's fields that name records (every one but the community and its owner)."""
    return [field.name for field in fields(World) if field.name not in ("community_id", "owner")]


class Caller(enum.Enum):
    """Who sends an entry's request."""

    OWNER = "the world's owner"
    OPERATOR = "a platform operator"  # where the owner cannot (another member's data)
    NEWCOMER = "someone new to the community"  # a new user id for every call (joining)
    LEAVER = "a member who leaves"  # the owner cannot leave
    APPELLANT = "the member a decision acted on"  # only they may appeal it


def new_id() -> str:
    """A client request id, new for every request."""
    return f"cat-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Rpc:
    """One method of one gRPC service, with a request valid in the world."""

    service: ServiceDescriptor
    method: str
    # A valid request in the world; a new one (new request id) on every call.
    request: Callable[[World], Message]
    # The least role in the community the caller needs; None: anyone signed in (who may read).
    least_role: Role | None
    # Whether a successful call changes state.
    writes: bool
    caller: Caller = Caller.OWNER
    # Only the author of the record the request names may make it (and operators): the
    # world's owner wrote it. Role checks that send it as someone else do not apply.
    authored: bool = False
    # A data-rights call of a service other than members (ExportMyData, EraseMyData): it acts
    # on the caller's own records in any community, member or not, so the role checks of
    # tests/service/test_tenancy_catalogue.py do not apply; that file checks it its own way.
    own_data: bool = False
    # The caller's right is checked again by a peer service (members, when content takes a
    # segment's snapshot with the caller's token): roles granted in this service alone do
    # not reach it, so the tenancy checks that expect such a caller to succeed skip it.
    peer_checked: bool = False
    # Acts on or reads the caller's own records of the community (my activities, my seat,
    # my feedback): the request names no one else's, so another caller succeeds only with
    # records of their own, which the world gives its owner alone. The tenancy checks in
    # which someone else must succeed skip it; the refusals still apply.
    mine: bool = False
    # Answers with a document even for a community with nothing in it (an iCalendar feed
    # with no events): "an empty answer" is not what tells an empty community there.
    document: bool = False
    # A read that leaves a record of itself (GetPost's view: a row and its ContentViewed in
    # the outbox): the tables it may add to; the checks that a read changes nothing skip them.
    records: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.service.name}.{self.method}"

    @property
    def needs(self) -> frozenset[str]:
        """The world's record fields (see `record_fields`) its request names."""
        marked = World(
            community_id="community",
            owner="owner",
            **{name: f"<record {name}>" for name in record_fields()},
        )
        request = str(self.request(marked))
        return frozenset(name for name in record_fields() if f"<record {name}>" in request)

    @property
    def descriptor(self) -> MethodDescriptor:
        return self.service.methods_by_name[self.method]

    @property
    def path(self) -> str:
        """The method's HTTP/2 path, as a raw call names it."""
        return f"/{self.service.full_name}/{self.method}"

    @property
    def request_type(self) -> type[Message]:
        return message_class(self.descriptor.input_type)

    @property
    def response_type(self) -> type[Message]:
        return message_class(self.descriptor.output_type)

    def metadata(self, running: RunningService, world: World) -> Metadata:
        """Call metadata of the entry's caller."""
        if self.caller is Caller.OPERATOR:
            return running.auth(OPERATOR, operator=True)
        users = {
            Caller.OWNER: world.owner,
            Caller.NEWCOMER: f"newcomer-{uuid.uuid4().hex[:12]}",
            Caller.LEAVER: world.leaver,
            Caller.APPELLANT: world.appellant,
        }
        return running.auth(users[self.caller])

    async def call(
        self,
        channel: grpc.aio.Channel,
        request: Message,
        metadata: Metadata,
        *,
        timeout: float = 30.0,
    ) -> Message:
        """Send `request` and return the response (raises grpc.aio.AioRpcError)."""
        send = channel.unary_unary(
            self.path,
            request_serializer=_serialize,
            response_deserializer=self.response_type.FromString,
        )
        return cast(Message, await send(request, metadata=metadata, timeout=timeout))

    async def call_raw(
        self,
        channel: grpc.aio.Channel,
        payload: bytes,
        metadata: Metadata,
        *,
        timeout: float = 30.0,
    ) -> bytes:
        """Send `payload` as the request's bytes, whatever they are; the response's bytes."""
        send = channel.unary_unary(self.path, request_serializer=None, response_deserializer=None)
        return cast(bytes, await send(payload, metadata=metadata, timeout=timeout))


def data_rights_entries(service: ServiceDescriptor) -> list[Rpc]:
    """ExportMyData and EraseMyData of a service other than members, sent by the world's
    owner for their own records (EraseMyData last in a catalogue: it changes the world)."""
    export_type = message_class(service.methods_by_name["ExportMyData"].input_type)
    erase_type = message_class(service.methods_by_name["EraseMyData"].input_type)
    return [
        Rpc(
            service,
            "ExportMyData",
            lambda w: export_type(community_id=w.community_id),
            None,
            False,
            own_data=True,
        ),
        Rpc(
            service,
            "EraseMyData",
            lambda w: erase_type(request_id=new_id(), community_id=w.community_id, confirm=True),
            None,
            True,
            own_data=True,
        ),
    ]


def _serialize(request: Message) -> bytes:
    return request.SerializeToString()


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


@dataclass(frozen=True)
class Peer:
    """A service a process calls (content asks members for a segment's members): started
    with the process on SQLite in its data directory, quiet, sharing its signing key, and
    reached through the process's `address_setting`."""

    name: str
    spec: ServiceSpec
    settings: type[ServiceSettings]
    address_setting: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Process:
    """One service process: what it serves, its store, its catalogue and its world."""

    name: str
    spec: ServiceSpec
    settings: type[ServiceSettings]
    # The service's tables: a snapshot of them tells whether a call changed anything.
    metadata: MetaData
    catalogue: Sequence[Rpc]
    # Builds a world: the records `needs` names (record fields), or every record for None.
    # A process may build more than asked; reads that name no record find something there.
    prepare: Callable[[RunningService, frozenset[str] | None], Awaitable[World]]
    # Settings of the process for these tests, on top of the defaults.
    overrides: Mapping[str, Any] = field(default_factory=dict)
    # The world's fields naming records of the owner's that ExportMyData returns.
    exported: Sequence[str] = ()
    # Services the process calls, started with it (RunningService.peers has them).
    peers: Sequence[Peer] = ()

    @property
    def services(self) -> list[ServiceDescriptor]:
        """Every gRPC service the process registers (as it names them to health checks)."""
        pool = descriptor_pool.Default()
        return [pool.FindServiceByName(name) for name in self.spec.service_names]


# No relay, no consumers, no background sweep: nothing but the calls a test makes changes the
# database, so a before/after snapshot around a call shows exactly what that call did, and
# no process touches NATS (whose streams the service tests' autouse fixture deletes).
QUIET: Mapping[str, Any] = {"relay": "external", "consumers": "external"}


STORES = ["sqlite", "postgresql"]


@contextmanager
def new_database(store: str, request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """A new, empty database on `store` ("sqlite" or "postgresql"), dropped afterwards; as
    tests/conftest.py's `database_url` makes one, for fixtures that outlive a test."""
    if store == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'service.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = "t_" + uuid.uuid4().hex[:16]
    url = server.create_database(name)
    try:
        yield str(url)
    finally:
        server.drop_database(name)


@asynccontextmanager
async def serve(
    process: Process,
    *,
    database_url: str,
    redis_url: str,
    nats_url: str,
    data_dir: Path,
) -> AsyncIterator[RunningService]:
    """The process in-process on `database_url`, quiet (see QUIET), with its peers."""
    async with AsyncExitStack() as stack:
        peers: dict[str, RunningService] = {}
        addresses: dict[str, Any] = {}
        for peer in process.peers:
            peers[peer.name] = await stack.enter_async_context(
                running_service(
                    peer.spec,
                    peer.settings,
                    database_url=f"sqlite+aiosqlite:///{data_dir / f'{peer.name}-peer.db'}",
                    redis_url=redis_url,
                    nats_url=nats_url,
                    data_dir=data_dir,
                    **{**QUIET, **peer.overrides},
                )
            )
            addresses[peer.address_setting] = peers[peer.name].server.address
        running = await stack.enter_async_context(
            running_service(
                process.spec,
                process.settings,
                database_url=database_url,
                redis_url=redis_url,
                nats_url=nats_url,
                data_dir=data_dir,
                **{**QUIET, **process.overrides, **addresses},
            )
        )
        running.peers.update(peers)
        yield running


Snapshot = dict[str, tuple[int, str]]


async def snapshot(running: RunningService, metadata: MetaData) -> Snapshot:
    """Every table of the service: its row count and a digest of its rows (in a stable
    order). One round trip: a few milliseconds, for the small worlds of these tests."""
    database = running.deps.database
    names = [table.name for table in metadata.sorted_tables]
    if database.is_sqlite:
        # A read-only connection of our own sees every committed write (WAL), without the
        # hops to aiosqlite's thread that cost a millisecond a table.
        path = database.url.database or ""
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found: Snapshot = {}
            for name in names:
                rows = sorted(repr(row) for row in connection.execute(f'SELECT * FROM "{name}"'))
                digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]
                found[name] = (len(rows), digest)
            return found
        finally:
            connection.close()
    query = " UNION ALL ".join(
        f"SELECT '{name}', count(*), "
        f"coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') "
        f'FROM "{name}" AS t'
        for name in names
    )
    async with database.read() as session:
        counted = (await session.execute(text(query))).all()
    return {str(name): (int(count), str(digest)) for name, count, digest in counted}


def changed_tables(before: Snapshot, after: Snapshot) -> list[str]:
    """The tables whose rows differ, with their row counts before and after."""
    return [
        f"{name} ({before.get(name, (0, ''))[0]} -> {after.get(name, (0, ''))[0]} rows)"
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]
