"""Holds by keyword rules: the case, the log entry and ContentHeld of a post a rule held,
written in the transaction of the post (handed to the posts capability by app.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion.domain import Comment
from services.content.moderation import decisions
from services.content.moderation.cases import CaseRepository, LogRepository
from services.content.moderation.domain import hold_reason
from services.content.moderation.events import moderated
from services.content.moderation.store import RuleRepository
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


async def held_comment(session: AsyncSession, comment: Comment, reason: str) -> None:
    """`comment` (held, saved) went into review because a rule that holds matched it."""
    now = datetime.now(UTC)
    cases = CaseRepository(session)
    existing = await cases.get(comment.community_id, decisions.COMMENT, comment.id)
    case = decisions.held_comment(comment, existing, reason, now)
    await cases.save(case, existing is not None)
    await LogRepository(session).add(case, "hold", "", reason, now)
    await moderated(session, "hold", case, "", reason, now)


async def hold_reason_in(session: AsyncSession, post: Post) -> str | None:
    """Why a rule that holds matches `post` (its rules read in `session`: a scheduled draft
    published by a job), or None."""
    rules = await RuleRepository(session).all_of(post.community_id)
    texts = {
        "title": post.title,
        "summary": post.summary,
        "body": post.body,
        "tags": " ".join(post.tags),
    }
    return hold_reason(rules, {name: text for name, text in texts.items() if text})
