"""Publishing a scheduled draft when it is due: the handler of the scheduler's
"publish_post" jobs, run once in the transaction that ends the job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.calendar import domain
from services.content.posts import domain as posts
from services.content.posts.events import PostEvents
from services.content.posts.store import PostRepository
from services.kit.access import Access
from services.kit.errors import FailedPrecondition
from services.kit.schedule import Handler, Job

PUBLISH = "publish_post"

# Moderation (handed in by app.py): why a keyword rule holds the post (read in the job's
# transaction), or None; and the hold recorded.
HoldReason = Callable[[AsyncSession, posts.Post], Awaitable[str | None]]
Holding = Callable[[AsyncSession, posts.Post, str], Awaitable[None]]


def publisher(
    access: Access, hold_reason: HoldReason | None = None, holding: Holding | None = None
) -> Handler:
    async def publish_due(session: AsyncSession, job: Job) -> None:
        repository = PostRepository(session)
        post = await repository.get(job.community_id, job.key, for_update=True)
        if post is None or post.state is not posts.PostState.DRAFT or post.scheduled_at is None:
            raise FailedPrecondition(f"post {job.key} is no longer a scheduled draft")
        now = datetime.now(UTC)
        reason = await why_not(access, post)
        if reason:
            missed = domain.miss(post, reason, now)
            await repository.save(missed)
            await PostEvents(session).missed(missed)
            return
        hold = None
        if hold_reason is not None and holding is not None:
            hold = await hold_reason(session, post)
        published = posts.publish(post, now, held=hold is not None)
        await repository.save(published)
        if hold is not None and holding is not None:
            # Due, but a rule that holds matches it: into review, not live.
            await holding(session, published, hold)
        else:
            await PostEvents(session).created(published)

    return publish_due


async def why_not(access: Access, post: posts.Post) -> str:
    """Why the post's author may not publish it now, as the API would refuse them; empty
    when they may."""
    standing = await access.standing(post.community_id, post.author_user_id)
    if standing.archived:
        return "the community is archived"
    if not post.author_user_id or standing.role is None:
        return "its author is no longer a member"
    if standing.muted():
        return "its author is muted"
    links = posts.carries_links(post.url, post.body, post.summary) or bool(post.media)
    if links and not standing.holds("post_links"):
        return "it carries links and its author's level does not unlock post_links"
    return ""
