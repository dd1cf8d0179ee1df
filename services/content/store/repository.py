from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.domain import Post, PostKind
from services.content.store.tables import posts
from services.kit.database import utc


class PostRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, post: Post) -> None:
        await self.session.execute(
            posts.insert().values(
                id=post.id,
                community_id=post.community_id,
                author_user_id=post.author_user_id,
                kind=int(post.kind),
                title=post.title,
                body=post.body,
                url=post.url,
                tags=post.tags,
                created_at=post.created_at,
                version=post.version,
            )
        )

    async def get(self, community_id: str, post_id: str) -> Post | None:
        row = (
            await self.session.execute(
                select(posts).where(posts.c.community_id == community_id, posts.c.id == post_id)
            )
        ).first()
        return _post(row) if row else None


def _post(row: Row[tuple[object, ...]]) -> Post:
    return Post(
        id=row.id,
        community_id=row.community_id,
        author_user_id=row.author_user_id,
        kind=PostKind(row.kind),
        title=row.title,
        body=row.body,
        url=row.url,
        tags=list(row.tags),
        created_at=utc(row.created_at),
        version=row.version,
    )
