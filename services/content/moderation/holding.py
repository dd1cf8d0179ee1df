"""Holds by keyword rules: the case, the log entry and ContentHeld of a post a rule held,
written in the transaction of the post (handed to the posts capability by app.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.moderation import decisions
from services.content.moderation.cases import CaseRepository, LogRepository
from services.content.moderation.events import moderated
from services.content.posts.domain import Post


async def held(session: AsyncSession, post: Post, reason: str) -> None:
    """`post` (HELD, saved) went into review because a rule that holds matched it."""
    now = datetime.now(UTC)
    cases = CaseRepository(session)
    existing = await cases.get(post.community_id, decisions.POST, post.id)
    case = decisions.held(post, existing, reason, now)
    await cases.save(case, existing is not None)
    await LogRepository(session).add(case, "hold", "", reason, now)
    await moderated(session, "hold", case, "", reason, now)
