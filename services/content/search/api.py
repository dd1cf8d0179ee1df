"""gRPC handler for search: validate, check the reader, query, present as the feeds do."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts.messages import present
from services.content.posts.store import posts_by_id
from services.content.search.store import search
from services.content.text import query_terms
from services.kit.access import Access, Standing
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.paging import page_of, read_page
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb

# Search serves the best matches, not an export: pages stop after this many.
MAX_RESULTS = 500
# A token's position is an offset; its time part only fills the kit's token shape.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BodyGate(Protocol):
    """Paid content (handed in by app.py): blanks the bodies the caller may not read."""

    async def guard(
        self, session: AsyncSession, caller: Identity, standing: Standing, shown: Sequence[pb.Post]
    ) -> list[str]: ...


class SearchApi:
    def __init__(self, database: Database, access: Access, gate: BodyGate) -> None:
        self.database = database
        self.access = access
        self.gate = gate

    async def SearchPosts(
        self, request: pb.SearchPostsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchPostsResponse:
        caller = current_identity()
        problems = Violations()
        problems.text("query", request.query)
        terms = query_terms(request.query)
        if request.query.strip() and not terms:
            problems.add("query", "holds no word to search for (letters, digits or Chinese)")
        page = read_page(problems, request, ["search", request.community_id, *terms], numeric=True)
        problems.raise_if_any()
        offset = page.after_number or 0
        standing = await self.access.require_reader(request.community_id, caller)
        limit = max(0, min(page.size + 1, MAX_RESULTS - offset))
        async with self.database.read() as session:
            found = await search(session, request.community_id, terms, offset, limit)
            by_id = await posts_by_id(session, [match.post_id for match in found])
            # A post changed between the two reads (deleted just now) is left out.
            kept = [match for match in found if match.post_id in by_id]
            shown = await present(session, [by_id[match.post_id] for match in kept])
            await self.gate.guard(session, caller, standing, shown)
        numbered = list(enumerate(zip(kept, shown, strict=True), start=offset + 1))
        hits, token = page_of(numbered, page, lambda item: (_EPOCH, str(item[0])))
        return pb.SearchPostsResponse(
            hits=[pb.SearchHit(post=post, matched_in=match.kind) for _, (match, post) in hits],
            next_page_token=token,
        )
