"""Creating posts, with the posts that arrive together committed together.

A post is a few indexed reads and two inserts; under load most of its cost is the statements
around them. Posts that arrive while a transaction is open wait for the next one (the kit's
GroupCommitter, decision 0011), and a group is read with a statement per table (the
authors' standings, the topics named, the request ids seen before) and written with one
insert of its posts, one of their search documents and one of their events, as members'
joins are. A post is built and its text cut into terms before it joins a group: that work
needs no transaction, and SQLite's writer is held for the statements alone.

A group gives the same answers as its posts one by one: each is decided in arrival order, a
refusal writes nothing and is its caller's answer, and when the transaction itself fails
every post in it is tried again alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts import domain
from services.content.posts.events import PostEvents
from services.content.posts.messages import post_to_proto
from services.content.posts.store import PostRepository, documents_of
from services.content.store.search_index import Document
from services.content.store.tables import topics
from services.kit.access import Access, Standing, check_open_privilege, check_voice
from services.kit.auth import Identity
from services.kit.database import Database
from services.kit.errors import DomainError, InvalidArgument
from services.kit.groups import GroupCommitter
from services.kit.idempotency import IdempotencyKey, IdempotentWriter, Recorded, replay
from studyhall.content.v1 import content_service_pb2 as pb

METHOD = "CreatePost"

# Moderation (handed in by app.py): records that a keyword rule held `post`, with why, in the
# post's transaction.
Holding = Callable[[AsyncSession, domain.Post, str], Awaitable[None]]


@dataclass(frozen=True)
class PostCommand:
    """One caller's validated CreatePost request."""

    caller: Identity
    community_id: str
    what: str  # "saving a draft" or "publishing a post", for refusals
    links: bool  # whether the post carries links (the post_links privilege)
    topic_id: str
    fields: dict[str, Any]  # domain.new_post's arguments
    key: IdempotencyKey
    digest: str = ""  # the request's fingerprint when it carries a request id, else ""
    # Why a keyword rule holds the post for review (fields' "held" is set); "" when none.
    hold: str = ""
    # The caller's trace, continued by the event the post publishes.
    trace: Context = field(default_factory=otel_context.get_current)

    @property
    def pair(self) -> tuple[str, str]:
        return (self.community_id, self.caller.user_id)


@dataclass(frozen=True)
class _Ready:
    """A command with its post built and its text cut into search documents, before the
    group's transaction (which then holds SQLite's writer for less). A post that is refused
    or a repeat is dropped unwritten."""

    command: PostCommand
    post: domain.Post
    documents: list[Document]


class Posting:
    """Takes CreatePost commands from concurrent callers and commits them in groups."""

    def __init__(
        self,
        database: Database,
        access: Access,
        idempotent: IdempotentWriter,
        holding: Holding | None = None,
    ) -> None:
        self.access = access
        self.holding = holding
        self.idempotent = idempotent
        self.committer: GroupCommitter[_Ready, pb.CreatePostResponse] = GroupCommitter(
            database, self._commit, on_commit=lambda: self.idempotent.on_commit()
        )

    async def create(self, command: PostCommand) -> pb.CreatePostResponse:
        post = domain.new_post(**command.fields)
        return await self.committer.submit(_Ready(command, post, documents_of(post)))

    async def _commit(
        self, session: AsyncSession, group: list[_Ready]
    ) -> list[pb.CreatePostResponse | DomainError]:
        commands = [ready.command for ready in group]
        recorded = await self.idempotent.recorded(
            session, METHOD, [command.key for command in commands]
        )
        # Decided in the transaction, on the projection as it is now: no cached standing
        # lets a member muted a moment ago post.
        standings = await self.access.standings(session, {command.pair for command in commands})
        named = {(command.community_id, command.topic_id) for command in commands}
        known_topics = await _existing_topics(session, named)
        outcomes: list[pb.CreatePostResponse | DomainError] = []
        created: list[tuple[domain.Post, Context]] = []
        documents: list[Document] = []
        holds: list[tuple[domain.Post, str]] = []
        results: list[tuple[IdempotencyKey, str, pb.CreatePostResponse]] = []
        for ready in group:
            command, key = ready.command, ready.command.key
            try:
                if key in recorded:
                    outcomes.append(
                        replay(key, command.digest, recorded[key], pb.CreatePostResponse)
                    )
                    continue
                _check(command, standings[command.pair], known_topics)
            except DomainError as refusal:
                outcomes.append(refusal)
                continue
            post = ready.post
            documents += ready.documents
            response = pb.CreatePostResponse(post=post_to_proto(post))
            created.append((post, command.trace))
            if post.state is domain.PostState.HELD:
                holds.append((post, command.hold))
            outcomes.append(response)
            if key.request_id:
                # A repeat of the key later in the group replays this answer.
                recorded[key] = Recorded(command.digest, response.SerializeToString())
                results.append((key, command.digest, response))
        if created:
            await PostRepository(session).add_many([post for post, _ in created], documents)
            visible = [(post, trace) for post, trace in created if post.visible]
            await PostEvents(session).created_many(
                [post for post, _ in visible], [trace for _, trace in visible]
            )
            for post, reason in holds:
                assert self.holding is not None
                await self.holding(session, post, reason)
        await self.idempotent.record(session, results)
        return outcomes


def _check(command: PostCommand, standing: Standing, known_topics: set[tuple[str, str]]) -> None:
    check_voice(command.community_id, standing, command.caller, command.what, writable=True)
    if command.links:
        check_open_privilege(
            command.community_id, standing, command.caller, "post_links", "posting links"
        )
    if command.topic_id and (command.community_id, command.topic_id) not in known_topics:
        raise InvalidArgument.field(
            "topic_id", f"names no topic of community {command.community_id}"
        )


async def _existing_topics(
    session: AsyncSession, named: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    wanted = {topic_id for _, topic_id in named if topic_id}
    if not wanted:
        return set()
    rows = await session.execute(
        select(topics.c.community_id, topics.c.id).where(topics.c.id.in_(wanted))
    )
    return {(row.community_id, row.id) for row in rows} & named
