"""Content's writes that arrive together commit together (services/kit/grouped_writes.py on
services/kit/groups.py, decision 0011), on SQLite and PostgreSQL, and every caller still
gets the answer it would get alone: its refusal, its replay, its own identity."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts.api import PostsApi
from services.content.posts.domain import PostKind
from services.content.posts.posting import PostCommand, Posting
from services.content.store.outbox import OUTBOX
from services.content.store.tables import access, idempotency_keys, outbox
from services.kit.access import PRIVATE, Access
from services.kit.auth import Identity, bind_identity, current_identity
from services.kit.database import Database
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.kit.grouped_writes import GroupedWriter
from services.kit.idempotency import IdempotencyKey, IdempotentWriter
from studyhall.content.v1 import content_events_pb2 as content_events
from studyhall.content.v1 import content_service_pb2 as pb
from tests.support.access import grant
from tests.support.services import RunningService

pytestmark = pytest.mark.service

POST_CREATED = "studyhall.content.v1.PostCreated"


@asynccontextmanager
async def own_database(content: RunningService) -> AsyncIterator[Database]:
    """The service's database through engines of the test's own, so that the commits counted
    are the grouped writes' and not those of the service's relay or of access reads."""
    database = Database(content.deps.settings.effective_database_url())
    try:
        yield database
    finally:
        await database.close()


@contextmanager
def counting_commits(database: Database) -> Iterator[list[int]]:
    commits: list[int] = []

    def on_commit(_connection: Any) -> None:
        commits.append(1)

    event.listen(database.writer.sync_engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(database.writer.sync_engine, "commit", on_commit)


@contextmanager
def counting_savepoints(database: Database) -> Iterator[list[int]]:
    savepoints: list[int] = []

    def on_savepoint(_connection: Any, _name: str) -> None:
        savepoints.append(1)

    event.listen(database.writer.sync_engine, "savepoint", on_savepoint)
    try:
        yield savepoints
    finally:
        event.remove(database.writer.sync_engine, "savepoint", on_savepoint)


def _article(community_id: str, request_id: str = "", **fields: Any) -> pb.CreatePostRequest:
    values: dict[str, Any] = {"kind": pb.POST_KIND_ARTICLE, "title": "Week notes", "body": "Read."}
    values.update(fields)
    return pb.CreatePostRequest(community_id=community_id, request_id=request_id, **values)


async def _as(user: str, call: Any) -> Any:
    """`call()` with `user` as the verified caller (each gathered call is a task of its own,
    so the binding stays in it)."""
    bind_identity(Identity(user))
    return await call()


async def _count(database: Database, statement: Any) -> int:
    async with database.read() as session:
        return int(await session.scalar(statement) or 0)


async def test_a_burst_of_posts_commits_in_few_transactions_each_caller_its_own_answer(
    content: RunningService,
) -> None:
    community_id = str(uuid.uuid4())
    authors = [f"author-{n}" for n in range(30)]
    for user in authors:
        await grant(content, community_id, user)
    async with own_database(content) as database:
        idempotent = IdempotentWriter(database, idempotency_keys)
        checks = Access("content", content.deps.database, access, content.deps.redis)
        posting = Posting(database, checks, idempotent)
        api = PostsApi(content.deps.database, checks, GroupedWriter(idempotent), posting)
        context = cast(grpc.aio.ServicerContext, None)
        # A request id recorded before the burst, then reused in it for another request.
        earlier = str(uuid.uuid4())
        await _as(authors[0], lambda: api.CreatePost(_article(community_id, earlier), context))
        repeated = str(uuid.uuid4())
        calls: list[tuple[str, pb.CreatePostRequest]] = [
            (user, _article(community_id, str(uuid.uuid4()), title=f"Notes of {user}"))
            for user in authors[1:27]
        ]
        calls[5] = (authors[6], _article(community_id, repeated, title="Twice"))
        calls[9] = (authors[6], _article(community_id, repeated, title="Twice"))
        calls[12] = (authors[13], _article(community_id, topic_id=str(uuid.uuid4())))
        calls[20] = (authors[0], _article(community_id, earlier, title="Something else"))
        with counting_commits(database) as commits:
            outcomes = await asyncio.gather(
                *(
                    _as(user, lambda request=request: api.CreatePost(request, context))
                    for user, request in calls
                ),
                return_exceptions=True,
            )
    assert len(commits) < len(calls) // 3, commits
    refused = {12: InvalidArgument, 20: FailedPrecondition}
    for index, ((user, request), outcome) in enumerate(zip(calls, outcomes, strict=True)):
        if index in refused:
            assert isinstance(outcome, refused[index]), (index, outcome)
            continue
        assert isinstance(outcome, pb.CreatePostResponse), (index, outcome)
        assert outcome.post.author_user_id == user
        assert outcome.post.title == request.title
    assert "names no topic" in str(outcomes[12])
    assert earlier in str(outcomes[20])
    assert outcomes[9] == outcomes[5]
    created = {reply.post.id for reply in outcomes if isinstance(reply, pb.CreatePostResponse)}
    assert len(created) == len(calls) - len(refused) - 1  # the repeat is the same post
    async with content.deps.database.read() as session:
        subjects = await session.scalars(
            select(outbox.c.ce_subject).where(
                outbox.c.community_id == community_id, outbox.c.event_type == POST_CREATED
            )
        )
        events = [subject.rsplit("/", 1)[-1] for subject in subjects]
    assert len(events) == len(created) + 1  # and the post made before the burst
    assert created <= set(events)
    keys = await _count(
        content.deps.database,
        select(func.count())
        .select_from(idempotency_keys)
        .where(idempotency_keys.c.caller.in_(authors), idempotency_keys.c.method == "CreatePost"),
    )
    # Every request id that made a post, once: the earlier one and the burst's new ones.
    assert keys == 1 + len(created)


async def test_a_refusal_after_a_write_undoes_only_its_own_and_a_failure_goes_alone(
    content: RunningService,
) -> None:
    """Actions that write before they refuse or fail, sharing one transaction: a refusal
    rolls back to its SAVEPOINT, a failure of any other kind fails the group, whose writes
    then go again each alone."""
    community_id = str(uuid.uuid4())
    broken: set[str] = {"gus"}

    def act(user: str, outcome: str) -> Any:
        async def action(session: AsyncSession) -> pb.CreatePostResponse:
            # The caller's own identity, though the group's transaction serves many.
            me = current_identity().user_id
            fact = content_events.PostCreated(community_id=community_id, post_id=me)
            await OUTBOX.add(session, fact, community_id=community_id, subject=f"posts/{me}")
            if outcome == "refuse":
                raise FailedPrecondition(f"{me} is refused after writing")
            if outcome == "fail" and me in broken:
                raise RuntimeError(f"{me} breaks the transaction")
            return pb.CreatePostResponse(post=pb.Post(author_user_id=me))

        return action

    plan = [
        ("ana", "write"),
        ("ben", "refuse"),
        ("cai", "write"),
        ("gus", "fail"),
        ("dov", "write"),
    ]
    async with own_database(content) as database:
        writer = GroupedWriter(IdempotentWriter(database, idempotency_keys))
        with counting_commits(database) as commits:
            outcomes = await asyncio.gather(
                *(
                    _as(
                        user,
                        lambda user=user, outcome=outcome: writer.write(
                            user,
                            _article(community_id),
                            pb.CreatePostResponse,
                            act(user, outcome),
                        ),
                    )
                    for user, outcome in plan
                ),
                return_exceptions=True,
            )
        # The group rolled back, then each went alone: the three writers and ben's refusal
        # (which rolls its own transaction back) commit nothing together.
        assert len(commits) == 3
        assert isinstance(outcomes[1], FailedPrecondition)
        assert isinstance(outcomes[3], RuntimeError)
        for index in (0, 2, 4):
            reply = outcomes[index]
            assert isinstance(reply, pb.CreatePostResponse)
            assert reply.post.author_user_id == plan[index][0]
        # Without the broken one, the same plan shares one transaction and ben's SAVEPOINT
        # takes back only his row.
        broken.clear()
        community_id = str(uuid.uuid4())
        with counting_commits(database) as commits:
            again = await asyncio.gather(
                *(
                    _as(
                        user,
                        lambda user=user, outcome=outcome: writer.write(
                            user,
                            _article(community_id),
                            pb.CreatePostResponse,
                            act(user, outcome),
                        ),
                    )
                    for user, outcome in plan
                ),
                return_exceptions=True,
            )
        assert len(commits) == 1
        assert isinstance(again[1], FailedPrecondition)
        authors = [r.post.author_user_id for r in again if isinstance(r, pb.CreatePostResponse)]
        assert authors == ["ana", "cai", "gus", "dov"]
        async with database.read() as session:
            subjects = await session.scalars(
                select(outbox.c.ce_subject).where(outbox.c.community_id == community_id)
            )
            assert sorted(subject.rsplit("/", 1)[-1] for subject in subjects) == [
                "ana",
                "cai",
                "dov",
                "gus",
            ]


async def test_a_group_without_refusals_takes_one_savepoint_not_one_per_write(
    content: RunningService,
) -> None:
    """The SAVEPOINT per write is paid only by a group in which a write refuses."""
    community_id = str(uuid.uuid4())
    users = [f"writer-{n}" for n in range(20)]

    async def action(session: AsyncSession) -> pb.CreatePostResponse:
        me = current_identity().user_id
        fact = content_events.PostCreated(community_id=community_id, post_id=me)
        await OUTBOX.add(session, fact, community_id=community_id, subject=f"posts/{me}")
        return pb.CreatePostResponse(post=pb.Post(author_user_id=me))

    async with own_database(content) as database:
        writer = GroupedWriter(IdempotentWriter(database, idempotency_keys))
        with counting_commits(database) as commits, counting_savepoints(database) as savepoints:
            outcomes = await asyncio.gather(
                *(
                    _as(
                        user,
                        lambda: writer.write(
                            current_identity().user_id,
                            _article(community_id),
                            pb.CreatePostResponse,
                            action,
                        ),
                    )
                    for user in users
                )
            )
    assert [reply.post.author_user_id for reply in outcomes] == users
    assert len(commits) < len(users) // 2, commits
    # One per group of more than one write, none for a write alone.
    assert len(savepoints) <= len(commits), (savepoints, commits)


async def test_a_group_across_communities_decides_each_post_on_its_authors_own_standing(
    content: RunningService,
) -> None:
    """One read of the standings serves a group of posts in several communities; each post is
    decided as it would be alone: a member posts, a muted member, an outsider of a private
    community, a guest of a public one and a caller in an unknown community are refused."""
    open_id, private_id, unknown_id = (str(uuid.uuid4()) for _ in range(3))
    await grant(content, open_id, "ana")
    await grant(content, open_id, "muted")
    await grant(content, private_id, "bea", visibility=PRIVATE)
    await grant(content, private_id, "cid", visibility=PRIVATE)
    async with content.deps.database.write() as session:
        await session.execute(
            access.roles.update()
            .where(access.roles.c.community_id == open_id, access.roles.c.user_id == "muted")
            .values(muted_until=datetime.now(UTC) + timedelta(hours=1))
        )
    plan = [
        ("ana", open_id, None),
        ("muted", open_id, PermissionDenied),
        ("bea", private_id, None),
        ("eve", private_id, NotFound),
        ("guest", open_id, PermissionDenied),
        ("cid", private_id, None),
        ("ana", unknown_id, NotFound),
    ]
    async with own_database(content) as database:
        checks = Access("content", content.deps.database, access, content.deps.redis)
        posting = Posting(database, checks, IdempotentWriter(database, idempotency_keys))
        with counting_commits(database) as commits:
            outcomes = await asyncio.gather(
                *(
                    _as(user, lambda community=community: _create(posting, community))
                    for user, community, _ in plan
                ),
                return_exceptions=True,
            )
    assert len(commits) < len(plan), commits
    for (user, community, refusal), outcome in zip(plan, outcomes, strict=True):
        if refusal is None:
            assert isinstance(outcome, pb.CreatePostResponse), (user, outcome)
            assert outcome.post.author_user_id == user
            assert outcome.post.community_id == community
        else:
            assert isinstance(outcome, refusal), (user, outcome)
    assert "muted" in str(outcomes[1])


async def _create(posting: Posting, community_id: str) -> pb.CreatePostResponse:
    caller = current_identity()
    return await posting.create(
        PostCommand(
            caller=caller,
            community_id=community_id,
            what="publishing a post",
            links=False,
            topic_id="",
            fields={
                "community_id": community_id,
                "author_user_id": caller.user_id,
                "kind": PostKind.ARTICLE,
                "title": "Week notes",
                "body": "Read.",
            },
            key=IdempotencyKey(caller.user_id, "CreatePost", ""),
        )
    )
