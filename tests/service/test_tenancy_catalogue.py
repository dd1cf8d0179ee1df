"""Tenancy (DESIGN.md rule 8) for every RPC of the request catalogue of content, events,
billing and analytics (members: tests/service/test_members_refusals.py).

Each service answers only within the community a call touches, and only to the roles that
community grants: a call without a token is unauthenticated; outsiders, staff of other
communities included, find no private community (exactly as if its id were made up); a
member below an entry's `least_role` is told which role it needs; a member holding exactly
that role may make the call in a private community; a member who left is an outsider again,
and their join arriving after the leave does not readmit them; operators may act without
belonging; and one community's records never answer for another's.

The checks are parametrized from the catalogue (tests/support/catalogue.py), so an entry
added there gets them too. One service runs per process and store (module-scoped); every
case works in communities of its own, prepared by the process's `prepare` (which makes a
community owned by the world's owner, holding the records its requests need). Roles are set
in the service's projection as its consumer of members' events writes it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, ExitStack
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from services.kit.access import PRIVATE, Role
from services.kit.projection import upsert_newer
from tests.support import rpcs_analytics, rpcs_billing, rpcs_content, rpcs_events
from tests.support.access import PUBLIC, grant
from tests.support.catalogue import (
    OPERATOR,
    STORES,
    Caller,
    Metadata,
    Process,
    Rpc,
    World,
    changed_tables,
    new_database,
    record_fields,
    serve,
    snapshot,
)
from tests.support.services import RunningService

pytestmark = pytest.mark.service

UNLISTED = 2  # studyhall.members.v1.Visibility.VISIBILITY_UNLISTED

PROCESSES = [
    rpcs_content.PROCESS,
    rpcs_events.PROCESS,
    rpcs_billing.PROCESS,
    rpcs_analytics.PROCESS,
]

RECORD_FIELDS = record_fields()


def names_a_record(rpc: Rpc) -> bool:
    """Whether the entry's request names a record of the world (a post, an activity, ...)."""
    marked = World(
        community_id="community",
        owner="owner",
        **{name: f"<record {name}>" for name in RECORD_FIELDS},
    )
    return "<record " in str(rpc.request(marked))


def entries(
    *,
    keep: Any = lambda rpc: not rpc.own_data,
    roles: Sequence[Role] = (),
    visibilities: Sequence[int] = (),
) -> list[Any]:
    """Every entry of the four processes that `keep` keeps (by default those that are not
    data-rights calls, which have checks of their own below), crossed with `roles` (each a
    role below the entry's least role) and `visibilities` when given."""
    params: list[Any] = []
    for process in PROCESSES:
        for rpc in process.catalogue:
            if not keep(rpc):
                continue
            held_roles: list[Role | None] = [None]
            if roles:
                held_roles = [
                    held for held in roles if rpc.least_role is not None and held < rpc.least_role
                ]
            for held in held_roles:
                for visibility in visibilities or [0]:
                    values: list[Any] = [process, rpc]
                    parts = [rpc.name]
                    if roles:
                        values.append(held)
                        parts.append(f"as-{held.name.lower() if held else ''}")
                    if visibilities:
                        values.append(visibility)
                        parts.append(VISIBILITY_NAMES[visibility])
                    params.append(pytest.param(*values, id="-".join(parts)))
    return params


VISIBILITY_NAMES = {PUBLIC: "public", UNLISTED: "unlisted", PRIVATE: "private"}
OPEN = [PUBLIC, UNLISTED]
EVERY_VISIBILITY = [PUBLIC, UNLISTED, PRIVATE]


def test_entries_are_sent_by_the_worlds_owner() -> None:
    """The role checks below speak for the world's owner's entries: a process here with an
    entry that someone else must send (an operator, a newcomer) needs checks of its own."""
    others = [rpc.name for p in PROCESSES for rpc in p.catalogue if rpc.caller is not Caller.OWNER]
    assert others == []


# One service per process and store.


@pytest.fixture(scope="module", params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
async def services(
    store: str,
    request: pytest.FixtureRequest,
    redis_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, RunningService]]:
    """Every process on a new database of the store, each started once for the module."""
    with ExitStack() as databases:
        async with AsyncExitStack() as stack:
            started: dict[str, RunningService] = {}
            for process in PROCESSES:
                directory = tmp_path_factory.mktemp(f"tenancy-{process.name}-{store}")
                database_url = databases.enter_context(new_database(store, request, directory))
                started[process.name] = await stack.enter_async_context(
                    serve(
                        process,
                        database_url=database_url,
                        redis_url=redis_url,
                        nats_url=nats_url,
                        data_dir=directory,
                    )
                )
            yield started


@pytest.fixture
def running(process: Process, services: dict[str, RunningService]) -> RunningService:
    return services[process.name]


# Setting up communities and standings.


async def forget_standing(running: RunningService, community_id: str, user_id: str) -> None:
    """Drop what the service may have cached of the caller's standing for a few seconds."""
    key = f"studyhall:{running.server.name}:standing:{community_id}:{user_id}"
    await running.deps.redis.call(lambda client: client.delete(key), None)


def access_tables(running: RunningService) -> Any:
    return importlib.import_module(f"services.{running.server.name}.store.tables").access


async def world(
    running: RunningService, process: Process, visibility: int, rpc: Rpc | None = None
) -> World:
    """A new world of the process (a community of its own, with the records `rpc` names, or
    all of them) of `visibility`, as members' CommunityCreated and a later CommunityUpdated
    leave it."""
    made = await process.prepare(running, None if rpc is None else rpc.needs)
    community = {"community_id": made.community_id, "visibility": visibility, "version": 2}
    async with running.deps.database.write() as session:
        await upsert_newer(
            session, access_tables(running).communities, [community], ["community_id"]
        )
    await forget_standing(running, made.community_id, made.owner)
    return made


async def other_community(running: RunningService, user_id: str, role: Role) -> str:
    """A new private community in which `user_id` holds `role`."""
    community_id = str(uuid.uuid4())
    await grant(running, community_id, user_id, role, visibility=PRIVATE)
    return community_id


async def leave(running: RunningService, community_id: str, user_id: str, *, version: int) -> None:
    """Record that `user_id` left, as the consumer does on members' MemberLeft."""
    standing = {
        "community_id": community_id,
        "user_id": user_id,
        "role": int(Role.MEMBER),
        "active": False,
        "version": version,
    }
    async with running.deps.database.write() as session:
        await upsert_newer(
            session, access_tables(running).roles, [standing], ["community_id", "user_id"]
        )
    await forget_standing(running, community_id, user_id)


def auth(running: RunningService, user_id: str) -> Metadata:
    return running.auth(user_id)


def operator(running: RunningService) -> Metadata:
    return running.auth(OPERATOR, operator=True)


# Making calls.


async def refused(
    running: RunningService, process: Process, rpc: Rpc, world: World, metadata: Metadata
) -> grpc.aio.AioRpcError:
    """Send the entry's request in `world`, which must fail without changing anything."""
    before = await snapshot(running, process.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.call(running.channel, rpc.request(world), metadata)
    assert changed_tables(before, await snapshot(running, process.metadata)) == []
    return caught.value


async def allowed(
    running: RunningService, process: Process, rpc: Rpc, world: World, metadata: Metadata
) -> Message:
    """Send the entry's request in `world`, which must succeed. A write changes the database
    (and keeps one idempotency key for its request id); a read changes nothing and answers
    with the records it names, or, naming none, with something of the prepared world."""
    before = await snapshot(running, process.metadata)
    request = rpc.request(world)
    response = await rpc.call(running.channel, request, metadata)
    assert isinstance(response, rpc.response_type)
    after = await snapshot(running, process.metadata)
    changed = changed_tables(before, after)
    if rpc.writes:
        assert changed, f"{rpc.name} succeeded but wrote nothing"
        if "request_id" in request.DESCRIPTOR.fields_by_name and "idempotency_keys" in after:
            kept = after["idempotency_keys"][0] - before.get("idempotency_keys", (0, ""))[0]
            assert kept == 1, f"{rpc.name} kept {kept} idempotency keys"
    else:
        changed = [change for change in changed if change.split(" ")[0] not in rpc.records]
        assert changed == [], f"{rpc.name} is a read but changed {changed}"
        named = named_records(rpc, world)
        for record_id in named:
            assert record_id in str(response), f"{rpc.name} did not answer with {record_id}"
        if not named:
            assert not empty(response, world.community_id), f"{rpc.name}: an empty answer"
    return response


def empty(message: Message, community_id: str) -> bool:
    """Whether `message` holds nothing but the community's id (as the figures of a community
    with nothing in it do)."""
    copy = type(message)()
    copy.CopyFrom(message)
    _forget(copy, community_id)
    return copy == type(message)()


def _forget(message: Message, community_id: str) -> None:
    for field, value in message.ListFields():
        if field.message_type is None:
            if value == community_id:
                message.ClearField(field.name)
            continue
        if isinstance(value, Message):
            _forget(value, community_id)
            if not value.ListFields():
                message.ClearField(field.name)
            continue
        inners = value.values() if hasattr(value, "values") else value  # a map's, or a list
        for inner in inners:
            if isinstance(inner, Message):
                _forget(inner, community_id)


def named_records(rpc: Rpc, world: World) -> list[str]:
    """The ids of the world's records the entry's request names."""
    request = str(rpc.request(world))
    ids = [getattr(world, name) for name in RECORD_FIELDS]
    return [record_id for record_id in ids if record_id and record_id in request]


def assert_told_which_role(
    error: grpc.aio.AioRpcError, rpc: Rpc, community_id: str, held: str
) -> None:
    """A caller below the entry's least role is told which role it needs, and what they are."""
    assert rpc.least_role is not None
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    details = error.details() or ""
    assert f"needs the {rpc.least_role.name.lower()} role or higher" in details
    assert community_id in details
    assert details.endswith(f"you are {held}")


ENTRY = ("process", "rpc")


@pytest.mark.parametrize(ENTRY, entries(keep=lambda rpc: True))
async def test_caller_without_a_token_is_unauthenticated(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    here = await world(running, process, PRIVATE, rpc)

    error = await refused(running, process, rpc, here, [])
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()


# The least and the most a role elsewhere could carry over; the roles between add nothing
# the access check could tell apart, and four of them per entry cost a minute of the suite.
@pytest.mark.parametrize(
    "role_elsewhere", [Role.MEMBER, Role.OWNER], ids=lambda role: role.name.lower()
)
@pytest.mark.parametrize(ENTRY, entries())
async def test_staff_of_another_community_finds_no_private_community_here(
    running: RunningService, process: Process, rpc: Rpc, role_elsewhere: Role
) -> None:
    here = await world(running, process, PRIVATE, rpc)
    await other_community(running, "mallory", role_elsewhere)

    error = await refused(running, process, rpc, here, auth(running, "mallory"))
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()

    # Exactly the answer for a community that does not exist: existence does not leak.
    missing = dataclasses.replace(here, community_id=str(uuid.uuid4()))
    nowhere = await refused(running, process, rpc, missing, auth(running, "mallory"))
    assert nowhere.code() == error.code()
    assert (nowhere.details() or "").replace(missing.community_id, "<id>") == (
        error.details() or ""
    ).replace(here.community_id, "<id>")


@pytest.mark.parametrize(
    (*ENTRY, "visibility"),
    entries(visibilities=OPEN, keep=lambda rpc: not rpc.own_data and not rpc.mine),
)
async def test_owner_of_another_community_has_no_role_in_an_open_one(
    running: RunningService, process: Process, rpc: Rpc, visibility: int
) -> None:
    here = await world(running, process, visibility, rpc)
    await other_community(running, "mallory", Role.OWNER)

    if rpc.least_role is None:
        # A public or unlisted community is open to anyone signed in.
        await allowed(running, process, rpc, here, auth(running, "mallory"))
    else:
        error = await refused(running, process, rpc, here, auth(running, "mallory"))
        assert_told_which_role(error, rpc, here.community_id, "not a member")


@pytest.mark.parametrize(
    (*ENTRY, "held", "visibility"), entries(roles=list(Role), visibilities=EVERY_VISIBILITY)
)
async def test_member_below_the_role_a_call_needs_is_told_which_role(
    running: RunningService, process: Process, rpc: Rpc, held: Role, visibility: int
) -> None:
    here = await world(running, process, visibility, rpc)
    await grant(running, here.community_id, "mia", held, visibility=visibility)

    error = await refused(running, process, rpc, here, auth(running, "mia"))
    assert_told_which_role(error, rpc, here.community_id, held.name.lower())


def not_authored(rpc: Rpc) -> bool:
    """Whether someone other than the world's owner may succeed with the entry's request."""
    return not rpc.own_data and not rpc.authored and not rpc.peer_checked and not rpc.mine


@pytest.mark.parametrize(ENTRY, entries(keep=not_authored))
async def test_member_holding_exactly_the_role_a_call_needs_may_make_it_in_a_private_community(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    here = await world(running, process, PRIVATE, rpc)
    role = rpc.least_role or Role.MEMBER
    await grant(running, here.community_id, "mia", role, visibility=PRIVATE)

    await allowed(running, process, rpc, here, auth(running, "mia"))


# Public and private: an unlisted community answers a member who left as a public one does
# (test_owner_of_another_community_has_no_role_in_an_open_one covers unlisted outsiders).
@pytest.mark.parametrize(
    (*ENTRY, "visibility"), entries(visibilities=[PUBLIC, PRIVATE], keep=not_authored)
)
async def test_member_who_left_is_an_outsider_again(
    running: RunningService, process: Process, rpc: Rpc, visibility: int
) -> None:
    here = await world(running, process, visibility, rpc)
    await grant(running, here.community_id, "lin", Role.OWNER, visibility=visibility, version=1)
    await allowed(running, process, rpc, here, auth(running, "lin"))

    await leave(running, here.community_id, "lin", version=2)

    if visibility == PRIVATE:
        error = await refused(running, process, rpc, here, auth(running, "lin"))
        assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
    elif rpc.least_role is None:
        await allowed(running, process, rpc, here, auth(running, "lin"))
    else:
        error = await refused(running, process, rpc, here, auth(running, "lin"))
        assert_told_which_role(error, rpc, here.community_id, "not a member")


@pytest.mark.parametrize(ENTRY, entries())
async def test_join_arriving_after_the_leave_does_not_readmit(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    here = await world(running, process, PRIVATE, rpc)
    await leave(running, here.community_id, "lin", version=2)
    # The older MemberJoined, delivered late.
    await grant(running, here.community_id, "lin", Role.OWNER, visibility=PRIVATE, version=1)

    error = await refused(running, process, rpc, here, auth(running, "lin"))
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()


@pytest.mark.parametrize(ENTRY, entries(keep=lambda rpc: not rpc.own_data and not rpc.mine))
async def test_operator_may_act_in_a_private_community_without_belonging(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    here = await world(running, process, PRIVATE, rpc)

    await allowed(running, process, rpc, here, operator(running))


@pytest.mark.parametrize(ENTRY, entries(keep=lambda rpc: names_a_record(rpc) and not rpc.own_data))
async def test_a_record_of_one_community_is_not_found_through_another(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    """Even for a member of both, and for an operator: a record id from community A asked
    through community B is not found, as an id that names nothing there."""
    home = await world(running, process, PRIVATE, rpc)
    elsewhere = await world(running, process, PRIVATE, rpc)
    for community_id in (home.community_id, elsewhere.community_id):
        await grant(running, community_id, "ada", Role.OWNER, visibility=PRIVATE)
    asked_elsewhere = dataclasses.replace(home, community_id=elsewhere.community_id)
    record_ids = named_records(rpc, home)

    for metadata in (auth(running, "ada"), operator(running)):
        error = await refused(running, process, rpc, asked_elsewhere, metadata)
        assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
        details = error.details() or ""
        assert any(
            details.endswith(f"{record_id} not found in community {elsewhere.community_id}")
            for record_id in record_ids
        ), details

    # The record is there, in its own community (for its author, where only they may act).
    by_owner = rpc.authored or rpc.peer_checked or rpc.mine
    await allowed(running, process, rpc, home, auth(running, home.owner if by_owner else "ada"))


@pytest.mark.parametrize(
    ENTRY,
    entries(
        keep=lambda rpc: (
            not rpc.writes
            and not names_a_record(rpc)
            and not (rpc.own_data or rpc.mine or rpc.document)
        )
    ),
)
async def test_a_read_of_a_whole_community_answers_with_that_community_alone(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    """A read naming only the community (its figures, say), by someone holding the role in
    two: the community with nothing in it does not answer with the other's data."""
    busy = await world(running, process, PRIVATE, rpc)
    role = rpc.least_role or Role.MEMBER
    quiet = dataclasses.replace(busy, community_id=await other_community(running, "ada", role))
    await grant(running, busy.community_id, "ada", role, visibility=PRIVATE)

    busy_answer = str(await allowed(running, process, rpc, busy, auth(running, "ada")))
    quiet_answer_message = await rpc.call(running.channel, rpc.request(quiet), auth(running, "ada"))
    quiet_answer = str(quiet_answer_message)
    assert busy.community_id not in quiet_answer
    assert quiet_answer != busy_answer.replace(busy.community_id, quiet.community_id)
    assert empty(quiet_answer_message, quiet.community_id), quiet_answer


@pytest.mark.parametrize(ENTRY, entries(keep=lambda rpc: rpc.authored))
async def test_only_the_author_may_make_an_authored_call(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    """Even an admin of the community may not edit or publish what someone else wrote."""
    here = await world(running, process, PRIVATE, rpc)
    await grant(running, here.community_id, "mia", Role.ADMIN, visibility=PRIVATE)

    error = await refused(running, process, rpc, here, auth(running, "mia"))
    if rpc.needs & {"draft_post_id", "scheduled_post_id"}:
        # A draft is its author's alone: to anyone else it does not exist.
        assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
        return
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    assert "only its author" in (error.details() or "")


# Data-rights calls: anyone's own records, no one else's.

OWN_DATA = entries(keep=lambda rpc: rpc.own_data)
# Exports answer with a JSON document; other own-data reads (billing's GetMyBilling) do not.
EXPORTS = entries(keep=lambda rpc: rpc.own_data and rpc.method == "ExportMyData")


def with_user(rpc: Rpc, user_id: str) -> Rpc:
    """The entry, its request naming `user_id` as whose data it acts on."""
    build = rpc.request

    def request(world: World) -> Message:
        message = build(world)
        message.user_id = user_id  # type: ignore[attr-defined]
        return message

    return dataclasses.replace(rpc, request=request)


@pytest.mark.parametrize(ENTRY, OWN_DATA)
async def test_anyone_may_act_on_their_own_data_in_any_community_and_it_is_theirs_alone(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    """An outsider (staff of another community) may export and erase what this service
    holds about them, even in a private community: the answer holds nothing of anyone
    else's, and an erasure changes nothing of anyone else's."""
    here = await world(running, process, PRIVATE)
    await other_community(running, "mallory", Role.OWNER)
    before = await snapshot(running, process.metadata)

    response = await rpc.call(running.channel, rpc.request(here), auth(running, "mallory"))

    answer = str(response)
    assert here.owner not in answer
    for record_id in [getattr(here, name) for name in RECORD_FIELDS]:
        assert not record_id or record_id not in answer
    changed = changed_tables(before, await snapshot(running, process.metadata))
    assert [table.split()[0] for table in changed] == (["idempotency_keys"] if rpc.writes else [])


@pytest.mark.parametrize(ENTRY, OWN_DATA)
async def test_only_an_operator_acts_on_another_users_data(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    here = await world(running, process, PRIVATE)
    await grant(running, here.community_id, "mia", Role.OWNER, visibility=PRIVATE)

    error = await refused(running, process, with_user(rpc, here.owner), here, auth(running, "mia"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    assert "only platform operators" in (error.details() or "")

    await allowed(running, process, with_user(rpc, here.owner), here, operator(running))


@pytest.mark.parametrize(ENTRY, EXPORTS)
async def test_an_export_holds_the_members_records_of_that_community_alone(
    running: RunningService, process: Process, rpc: Rpc
) -> None:
    """The world's owner exports their records (its post, activity, ...) from their
    community, and from another community they own, where those records do not appear."""
    here = await world(running, process, PRIVATE)
    elsewhere = await world(running, process, PRIVATE)
    owner = auth(running, here.owner)
    record_ids = [getattr(here, name) for name in process.exported]

    document = json.loads((await rpc.call(running.channel, rpc.request(here), owner)).document)  # type: ignore[attr-defined]
    assert document["community_id"] == here.community_id
    assert document["user_id"] == here.owner
    assert document["standing"]["role"] == "owner"
    for record_id in record_ids:
        assert record_id in json.dumps(document)

    other = json.loads(
        (await rpc.call(running.channel, rpc.request(elsewhere), owner)).document  # type: ignore[attr-defined]
    )
    for record_id in record_ids:
        assert record_id not in json.dumps(other)
