"""Publishing a recurring theme's occurrence when it is due: the handler of the
scheduler's "publish_theme" jobs, run once in the transaction that ends the job, which
also sets the next occurrence's job."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.calendar.publishing import why_not
from services.content.posts import domain as posts
from services.content.posts.events import PostEvents
from services.content.posts.store import PostRepository
from services.content.store.tables import scheduled_jobs
from services.content.themes import domain
from services.content.themes.events import ThemeEvents
from services.content.themes.store import ThemeRepository
from services.kit.access import Access
from services.kit.errors import FailedPrecondition
from services.kit.schedule import Handler, Job, Jobs

PUBLISH_THEME = domain.PUBLISH_THEME
JOBS = Jobs(scheduled_jobs)


def next_job(theme: domain.Theme) -> Job:
    assert theme.next_at is not None
    return Job(PUBLISH_THEME, theme.job_key, theme.community_id, theme.next_at)


def theme_publisher(access: Access) -> Handler:
    async def publish_due(session: AsyncSession, job: Job) -> None:
        theme_id, _, local_date = job.key.partition("/")
        repository = ThemeRepository(session)
        theme = await repository.get(job.community_id, theme_id, for_update=True)
        if theme is None or not theme.active or theme.next_local_date != local_date:
            raise FailedPrecondition(f"theme {theme_id} has no occurrence on {local_date}")
        now = datetime.now(UTC)
        post = posts.new_post(
            community_id=theme.community_id,
            author_user_id=theme.author_user_id,
            kind=posts.PostKind(theme.kind),
            title=domain.filled(theme.title, local_date),
            body=domain.filled(theme.body, local_date),
            topic_id=theme.topic_id,
            now=now,
        )
        post = replace(post, id=domain.post_id(theme, local_date))
        reason = await why_not(access, post)
        following = domain.advance(theme, published=not reason, missed_reason=reason, now=now)
        await repository.save(following)
        await JOBS.set(session, next_job(following))
        if reason:
            await ThemeEvents(session).missed(theme, local_date, reason)
            return
        await PostRepository(session).add(post)
        await PostEvents(session).created(post)
        await ThemeEvents(session).published(theme, post.id, local_date, now)

    return publish_due
