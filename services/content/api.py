"""gRPC edge of the content service: decode, validate, authorize, call, encode."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content import domain
from services.content.store.events import post_created
from services.content.store.repository import PostRepository
from services.content.store.tables import idempotency_keys
from services.kit.access import Access
from services.kit.auth import current_identity
from services.kit.database import Database
from services.kit.errors import NotFound
from services.kit.idempotency import IdempotentWriter
from services.kit.timestamps import timestamp
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ContentService"].full_name


class ContentApi:
    def __init__(
        self, database: Database, access: Access, on_commit: Callable[[], None] = lambda: None
    ) -> None:
        self.database = database
        self.access = access
        self.writer = IdempotentWriter(database, idempotency_keys, on_commit)

    async def CreatePost(
        self, request: pb.CreatePostRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreatePostResponse:
        caller = current_identity()
        problems = Violations()
        problems.enum("kind", request.kind, domain.PostKind, "PostKind", required=True)
        problems.text("title", request.title, max_length=domain.TITLE_MAX)
        problems.text(
            "body",
            request.body,
            required=int(request.kind) in domain.KINDS_WITH_BODY,
            max_length=domain.BODY_MAX,
        )
        if int(request.kind) in domain.KINDS_WITH_URL and not request.url:
            problems.add("url", "is required for link, video, audio and resource posts")
        elif len(request.url) > domain.URL_MAX:
            problems.add(
                "url", f"must be at most {domain.URL_MAX} characters (got {len(request.url)})"
            )
        elif request.url and not domain.is_web_url(request.url):
            problems.add("url", "must be an absolute http:// or https:// URL")
        problems.tags("tags", list(request.tags))
        problems.raise_if_any()
        await self.access.require_voice(request.community_id, caller, "publishing a post")
        await self.access.require_writable(request.community_id, caller, "publishing a post")
        if domain.carries_links(request.url, request.body):
            await self.access.require_privilege(
                request.community_id,
                caller,
                "post_links",
                "posting links",
                open_until_gated=True,
            )

        async def create(session: AsyncSession) -> pb.CreatePostResponse:
            post = domain.new_post(
                community_id=request.community_id,
                author_user_id=caller.user_id,
                kind=domain.PostKind(request.kind),
                title=request.title,
                body=request.body,
                url=request.url,
                tags=list(request.tags),
            )
            await PostRepository(session).add(post)
            await post_created(session, post)
            return pb.CreatePostResponse(post=_to_proto(post))

        return await self.writer.write(caller.user_id, request, pb.CreatePostResponse, create)

    async def GetPost(
        self, request: pb.GetPostRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPostResponse:
        caller = current_identity()
        problems = Violations()
        problems.uuid("post_id", request.post_id)
        problems.raise_if_any()
        await self.access.require_reader(request.community_id, caller)
        async with self.database.read() as session:
            post = await PostRepository(session).get(request.community_id, request.post_id)
        if post is None:
            # Looked up within the community: another community's post is simply not found.
            raise NotFound(f"post {request.post_id} not found in community {request.community_id}")
        return pb.GetPostResponse(post=_to_proto(post))


def _to_proto(post: domain.Post) -> pb.Post:
    return pb.Post(
        id=post.id,
        community_id=post.community_id,
        author_user_id=post.author_user_id,
        kind=pb.PostKind.ValueType(post.kind),
        title=post.title,
        body=post.body,
        url=post.url,
        tags=post.tags,
        create_time=timestamp(post.created_at),
        version=post.version,
    )
