"""gRPC handlers for posts: writing, editing, publishing, deleting, pinning and the feeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts import domain, posting
from services.content.posts.domain import post_not_found
from services.content.posts.events import PostEvents
from services.content.posts.fields import check_post_fields
from services.content.posts.messages import (
    media_from_proto,
    present,
    revision_to_proto,
)
from services.content.posts.ownership import own_post
from services.content.posts.posting import PostCommand, Posting
from services.content.posts.store import PostRepository
from services.content.topics.store import TopicRepository
from services.kit.access import Access, Role, Standing, check_writable
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import InvalidArgument, PermissionDenied
from services.kit.grouped_writes import Writer
from services.kit.idempotency import IdempotencyKey, fingerprint
from services.kit.paging import page_of, read_page
from services.kit.validation import Violations, is_uuid
from studyhall.content.v1 import content_service_pb2 as pb

# The "top" feed counts reactions and comments of this window.
TOP_WINDOW = timedelta(days=7)
_CREATE_FIELDS = ("title", "summary", "body", "url", "tags", "topic_id", "media")


class BodyGate(Protocol):
    """Paid content (handed in by app.py): marks the paid posts among `shown` and blanks
    the bodies the caller may not read, returning those posts' ids."""

    async def guard(
        self, session: AsyncSession, caller: Identity, standing: Standing, shown: Sequence[pb.Post]
    ) -> list[str]: ...


class Screening(Protocol):
    """Keyword rules (handed in by app.py): refuses a text holding a watched phrase."""

    async def check(
        self, community_id: str, fields: Mapping[str, str], *, holds: bool = False
    ) -> None: ...

    async def hold_reason(self, community_id: str, fields: Mapping[str, str]) -> str | None: ...

    async def watches(self, community_id: str) -> bool: ...


class Moderation(Protocol):
    """Moderation (handed in by app.py): where a held, hidden or removed post stands."""

    async def __call__(
        self, session: AsyncSession, post: domain.Post
    ) -> pb.ModerationCase | None: ...


class Viewed(Protocol):
    """Views (handed in by app.py): a reader read a published post."""

    async def read(self, community_id: str, post_id: str, user_id: str) -> None: ...


class PostsApi:
    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        posting: Posting,
        gate: BodyGate | None = None,
        views: Viewed | None = None,
        screen: Screening | None = None,
        holding: posting.Holding | None = None,
        moderation: Moderation | None = None,
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        # CreatePost, the hot write, decides and writes a whole group at a time.
        self.posting = posting
        self.gate = gate
        self.views = views
        self.screen = screen
        # Moderation: a post a keyword rule holds goes into review (PublishPost, UpdatePost).
        self.holding = holding
        self.moderation = moderation

    async def CreatePost(
        self, request: pb.CreatePostRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreatePostResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("kind", request.kind, domain.PostKind, "PostKind", required=True)
        check_post_fields(problems, request, _CREATE_FIELDS)
        if request.kind in domain.PostKind._value2member_map_:
            shape = domain.shape_problems(domain.PostKind(request.kind), request.body, request.url)
            for field_name, problem in shape.items():
                problems.add(field_name, problem)
        problems.raise_if_any()
        what = "saving a draft" if request.draft else "publishing a post"
        media = [media_from_proto(item) for item in request.media]
        command = PostCommand(
            caller=caller,
            community_id=request.community_id,
            what=what,
            links=domain.carries_links(request.url, request.body, request.summary) or bool(media),
            topic_id=request.topic_id,
            fields={
                "community_id": request.community_id,
                "author_user_id": caller.user_id,
                "kind": domain.PostKind(request.kind),
                "title": request.title,
                "body": request.body,
                "url": request.url,
                "tags": list(request.tags),
                "summary": request.summary,
                "topic_id": request.topic_id,
                "media": media,
                "draft": request.draft,
            },
            key=IdempotencyKey(caller.user_id, posting.METHOD, request.request_id),
            digest=fingerprint(request) if request.request_id else "",
        )
        if self.screen is not None and await self.screen.watches(request.community_id):
            # Refusals keep their order: who may post comes before what they wrote.
            await self.access.require_voice(request.community_id, caller, what, writable=True)
            texts = _screened(request, _CREATE_FIELDS)
            await self.screen.check(request.community_id, texts, holds=self.holding is not None)
            hold = await self.screen.hold_reason(request.community_id, texts)
            if hold is not None and self.holding is not None and not request.draft:
                # Accepted, and held for review (a draft is screened when published).
                command = replace(command, hold=hold, fields={**command.fields, "held": True})
        return await self.posting.create(command)

    async def GetPost(
        self, request: pb.GetPostRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPostResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("post_id", request.post_id)
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            post = await PostRepository(session).get(request.community_id, request.post_id)
            if post is None or not post.visible_to(caller.user_id, _moderates(standing, caller)):
                # Looked up within the community: another community's post is simply not found.
                raise post_not_found(request.post_id, request.community_id)
            [shown] = await present(session, [post])
            if self.moderation is not None and post.state in domain.MODERATED:
                case = await self.moderation(session, post)
                if case is not None:
                    shown.moderation.CopyFrom(case)
            if self.gate is not None and await self.gate.guard(session, caller, standing, [shown]):
                raise PermissionDenied(
                    f"post {post.id} needs an entitlement to product "
                    f"{shown.required_product_id}; its title and summary show in the feeds"
                )
        if self.views is not None and post.visible and post.author_user_id != caller.user_id:
            # Readers' views: an author opening their own post is not a read.
            await self.views.read(post.community_id, post.id, caller.user_id)
        return pb.GetPostResponse(post=shown)

    async def UpdatePost(
        self, request: pb.UpdatePostRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdatePostResponse:
        caller = current_identity()
        paths = sorted(set(request.update_mask.paths))
        problems = Violations()
        problems.uuid("post_id", request.post_id)
        if not paths:
            problems.add("update_mask", "name at least one field to change")
        for path in paths:
            if path not in domain.UPDATABLE:
                problems.add("update_mask", f"{path!r} cannot be changed; use {domain.UPDATABLE}")
        check_post_fields(problems, request.post, paths, prefix="post.")
        problems.raise_if_any()
        changes: dict[str, Any] = {
            path: (
                [media_from_proto(item) for item in request.post.media]
                if path == "media"
                else list(request.post.tags)
                if path == "tags"
                else getattr(request.post, path)
            )
            for path in paths
        }
        await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "editing a post", writable=True
        )
        new = request.post
        hold: str | None = None
        if self.screen is not None:
            texts = _screened(new, paths, "post.")
            await self.screen.check(request.community_id, texts, holds=self.holding is not None)
            if self.holding is not None:
                hold = await self.screen.hold_reason(request.community_id, texts)
        if domain.carries_links(
            new.url if "url" in paths else "",
            *(getattr(new, path) for path in ("body", "summary") if path in paths),
        ) or ("media" in paths and new.media):
            await self._require_links(request.community_id, caller)

        async def edit(session: AsyncSession) -> pb.UpdatePostResponse:
            posts = PostRepository(session)
            post = await own_post(session, request.community_id, request.post_id, caller)
            if "topic_id" in changes:
                await _check_topic(session, post.community_id, changes["topic_id"], "post.topic_id")
            number = await posts.revision_count(post.id) + 1
            now = datetime.now(UTC)
            edited, revision = domain.edit(post, changes, caller.user_id, request.etag, now, number)
            if revision is not None:
                was_visible = edited.visible
                if hold is not None and self.holding is not None and was_visible:
                    # Back into review; to consumers it is gone, as a deleted post is (0053).
                    edited = domain.hold(edited)
                await posts.save(edited)
                await posts.add_revision(revision)
                if edited.visible:
                    await PostEvents(session).updated(
                        edited, caller.user_id, revision.changed_fields
                    )
                elif was_visible and self.holding is not None and hold is not None:
                    events = PostEvents(session)
                    await events.withdrawn(edited, "", now)
                    await events.acceptance_ended_with(edited, "")
                    await self.holding(session, edited, hold)
            [shown] = await present(session, [edited])
            return pb.UpdatePostResponse(post=shown)

        return await self.writer.write(caller.user_id, request, pb.UpdatePostResponse, edit)

    async def ListPostRevisions(
        self, request: pb.ListPostRevisionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPostRevisionsResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("post_id", request.post_id)
        page = read_page(problems, request, ["revisions", request.post_id], numeric=True)
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            posts = PostRepository(session)
            post = await posts.get(request.community_id, request.post_id)
            if post is None or not post.visible_to(caller.user_id, _moderates(standing, caller)):
                raise post_not_found(request.post_id, request.community_id)
            if post.author_user_id != caller.user_id:
                await self.access.require_role(
                    request.community_id,
                    caller,
                    Role.MODERATOR,
                    "reading the revisions of another member's post",
                )
            found = await posts.revisions(post.id, page.after_number, page.size + 1)
        revisions, token = page_of(found, page, lambda r: (r.edited_at, str(r.number)))
        return pb.ListPostRevisionsResponse(
            revisions=[revision_to_proto(revision) for revision in revisions],
            next_page_token=token,
        )

    async def PublishPost(
        self, request: pb.PublishPostRequest, context: grpc.aio.ServicerContext
    ) -> pb.PublishPostResponse:
        caller = current_identity()
        await self.access.require_voice(
            request.community_id, caller, "publishing a post", writable=True
        )
        async with self.database.read() as session:
            draft = await own_post(session, request.community_id, request.post_id, caller)
        if domain.carries_links(draft.url, draft.body, draft.summary) or draft.media:
            await self._require_links(request.community_id, caller)
        hold: str | None = None
        if self.screen is not None and self.holding is not None:
            # A draft was screened for what refuses when saved; what holds applies now.
            texts = {
                "title": draft.title,
                "summary": draft.summary,
                "body": draft.body,
                "tags": " ".join(draft.tags),
            }
            hold = await self.screen.hold_reason(request.community_id, texts)

        async def publish(session: AsyncSession) -> pb.PublishPostResponse:
            post = await own_post(session, request.community_id, request.post_id, caller)
            published = domain.publish(post, datetime.now(UTC), held=hold is not None)
            await PostRepository(session).save(published)
            if hold is not None and self.holding is not None:
                await self.holding(session, published, hold)
            else:
                await PostEvents(session).created(published)
            [shown] = await present(session, [published])
            return pb.PublishPostResponse(post=shown)

        return await self.writer.write(caller.user_id, request, pb.PublishPostResponse, publish)

    async def DeletePost(
        self, request: pb.DeletePostRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeletePostResponse:
        caller = current_identity()
        standing = await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            found = await PostRepository(session).get(request.community_id, request.post_id)
        if found is None or (found.state is domain.PostState.DRAFT and not _mine(found, caller)):
            raise post_not_found(request.post_id, request.community_id)
        if found.author_user_id != caller.user_id:
            # Whether the post is already deleted is for those who may delete it to learn.
            await self.access.require_role(
                request.community_id, caller, Role.MODERATOR, "deleting another member's post"
            )
        check_writable(request.community_id, standing, "deleting a post")

        async def delete(session: AsyncSession) -> pb.DeletePostResponse:
            post = await _post_for_update(session, request.community_id, request.post_id)
            was_visible = post.visible
            deleted = domain.delete(post, caller.user_id, datetime.now(UTC))
            await PostRepository(session).save(deleted)
            if was_visible:
                events = PostEvents(session)
                await events.deleted(deleted)
                # The question is gone: what its accepted answer earned goes back.
                await events.acceptance_ended_with(deleted, caller.user_id)
            [shown] = await present(session, [deleted])
            return pb.DeletePostResponse(post=shown)

        return await self.writer.write(caller.user_id, request, pb.DeletePostResponse, delete)

    async def RestorePost(
        self, request: pb.RestorePostRequest, context: grpc.aio.ServicerContext
    ) -> pb.RestorePostResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "restoring a post", writable=True
        )

        async def restore(session: AsyncSession) -> pb.RestorePostResponse:
            post = await _post_for_update(session, request.community_id, request.post_id)
            if post.state is domain.PostState.DRAFT:
                # A moderator never sees another member's drafts.
                raise post_not_found(request.post_id, request.community_id)
            restored = domain.restore(post)
            await PostRepository(session).save(restored)
            if restored.visible:
                events = PostEvents(session)
                now = datetime.now(UTC)
                await events.restored(restored, caller.user_id, now)
                await events.acceptance_resumed_with(restored, caller.user_id)
            [shown] = await present(session, [restored])
            return pb.RestorePostResponse(post=shown)

        return await self.writer.write(caller.user_id, request, pb.RestorePostResponse, restore)

    async def PinPost(
        self, request: pb.PinPostRequest, context: grpc.aio.ServicerContext
    ) -> pb.PinPostResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "pinning a post", writable=True
        )

        async def pin(session: AsyncSession) -> pb.PinPostResponse:
            post = await _visible_for_update(session, request.community_id, request.post_id)
            pinned = domain.pin(post, datetime.now(UTC))
            await PostRepository(session).save(pinned)
            await PostEvents(session).pinned(pinned, caller.user_id)
            [shown] = await present(session, [pinned])
            return pb.PinPostResponse(post=shown)

        return await self.writer.write(caller.user_id, request, pb.PinPostResponse, pin)

    async def UnpinPost(
        self, request: pb.UnpinPostRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnpinPostResponse:
        caller = current_identity()
        await self.access.require_role(
            request.community_id, caller, Role.MODERATOR, "unpinning a post", writable=True
        )

        async def unpin(session: AsyncSession) -> pb.UnpinPostResponse:
            post = await _visible_for_update(session, request.community_id, request.post_id)
            unpinned = domain.unpin(post)
            await PostRepository(session).save(unpinned)
            await PostEvents(session).unpinned(unpinned, caller.user_id, datetime.now(UTC))
            [shown] = await present(session, [unpinned])
            return pb.UnpinPostResponse(post=shown)

        return await self.writer.write(caller.user_id, request, pb.UnpinPostResponse, unpin)

    async def ListPosts(
        self, request: pb.ListPostsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPostsResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("order", request.order, pb.FeedOrder.values(), "FeedOrder")
        top = request.order == pb.FEED_ORDER_TOP
        if request.drafts and (top or request.topic_id):
            problems.add("drafts", "lists the caller's drafts newest first: no order or topic")
        query = ["posts", request.community_id, request.topic_id, str(int(request.order))]
        if request.drafts:
            query = ["drafts", request.community_id, caller.user_id]
        page = read_page(problems, request, query)
        top_after = _top_position(problems, page.after) if top else None
        problems.raise_if_any()
        standing = await self.access.require_reader(request.community_id, caller)
        topic_id = request.topic_id or None
        pinned: list[domain.Post] = []
        async with self.database.read() as session:
            posts = PostRepository(session)
            if request.drafts:
                found = await posts.drafts(
                    request.community_id, caller.user_id, page.after, page.size + 1
                )
                listed, token = page_of(found, page, lambda post: (post.created_at, post.id))
            elif top:
                since = datetime.now(UTC) - TOP_WINDOW
                scored = await posts.top(
                    request.community_id, topic_id, since, top_after, page.size + 1
                )
                page_items, token = page_of(scored, page, _top_token_position)
                listed = [post for post, _score in page_items]
            else:
                if not request.page_token:
                    pinned = await posts.pinned(request.community_id, topic_id)
                found = await posts.newest(
                    request.community_id, topic_id, page.after, page.size + 1
                )
                listed, token = page_of(found, page, _published_position)
            shown = await present(session, [*pinned, *listed])
            if self.gate is not None:
                await self.gate.guard(session, caller, standing, shown)
        return pb.ListPostsResponse(
            pinned=shown[: len(pinned)], posts=shown[len(pinned) :], next_page_token=token
        )

    async def _require_links(self, community_id: str, caller: Identity) -> None:
        await self.access.require_privilege(
            community_id, caller, "post_links", "posting links", open_until_gated=True
        )


async def _post_for_update(session: AsyncSession, community_id: str, post_id: str) -> domain.Post:
    post = await PostRepository(session).get(community_id, post_id, for_update=True)
    if post is None:
        raise post_not_found(post_id, community_id)
    return post


async def _visible_for_update(
    session: AsyncSession, community_id: str, post_id: str
) -> domain.Post:
    post = await _post_for_update(session, community_id, post_id)
    if post.state is domain.PostState.DRAFT:
        raise post_not_found(post_id, community_id)
    return post


async def _check_topic(session: AsyncSession, community_id: str, topic_id: str, field: str) -> None:
    if topic_id and await TopicRepository(session).get(community_id, topic_id) is None:
        raise InvalidArgument.field(field, f"names no topic of community {community_id}")


def _screened(message: Any, paths: Sequence[str], prefix: str = "") -> dict[str, str]:
    """The written text of `paths` in a post message, by field name, for the keyword rules."""
    texts = {
        f"{prefix}{path}": getattr(message, path)
        for path in ("title", "summary", "body")
        if path in paths
    }
    if "tags" in paths:
        texts[f"{prefix}tags"] = " ".join(message.tags)
    return texts


def _mine(post: domain.Post, caller: Identity) -> bool:
    return caller.operator or post.author_user_id == caller.user_id


def _moderates(standing: Standing, caller: Identity) -> bool:
    return caller.operator or (standing.role is not None and standing.role >= Role.MODERATOR)


def _published_position(post: domain.Post) -> tuple[datetime, str]:
    assert post.published_at is not None
    return post.published_at, post.id


def _top_token_position(item: tuple[domain.Post, int]) -> tuple[datetime, str]:
    post, score = item
    assert post.published_at is not None
    return post.published_at, f"{score}:{post.id}"


def _top_position(
    problems: Violations, after: tuple[datetime, str] | None
) -> tuple[int, datetime, str] | None:
    """The (score, published, id) a top-feed token holds; a token that does not hold one
    goes to `problems`."""
    if after is None:
        return None
    published, item = after
    score, _, post_id = item.partition(":")
    if not (score.isascii() and score.isdigit() and len(score) <= 15 and is_uuid(post_id)):
        problems.add("page_token", "is not a token this query returned; start without it")
        return None
    return int(score), published, post_id
