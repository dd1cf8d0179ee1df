"""Finding a post its author (or an operator) may change, within its community."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts.domain import Post, post_not_found
from services.content.posts.store import PostRepository
from services.kit.auth import Identity
from services.kit.errors import PermissionDenied


async def own_post(
    session: AsyncSession, community_id: str, post_id: str, caller: Identity
) -> Post:
    """The caller's post, locked for the change (operators act on anyone's). Someone else's
    draft does not exist for the caller."""
    post = await PostRepository(session).get(community_id, post_id, for_update=True)
    if post is None or not (caller.operator or post.visible_to(caller.user_id, False)):
        raise post_not_found(post_id, community_id)
    if post.author_user_id != caller.user_id and not caller.operator:
        raise PermissionDenied(f"only its author may change post {post_id}")
    return post
