"""The facts about keyword rules, staged in content's outbox in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion import domain as discussion
from services.content.discussion.events import DiscussionEvents
from services.content.discussion.store import CommentRepository
from services.content.moderation.decisions import Case, CommentDecision, Decision
from services.content.moderation.domain import KeywordRule
from services.content.posts.domain import Post
from services.content.posts.events import PostEvents
from services.content.posts.store import PostRepository
from services.content.store.outbox import OUTBOX
from services.kit.timestamps import timestamp
from studyhall.content.v1 import content_events_pb2 as events


async def rule_added(session: AsyncSession, rule: KeywordRule) -> None:
    await OUTBOX.add(
        session,
        events.KeywordRuleAdded(
            community_id=rule.community_id,
            rule_id=rule.id,
            added_by_user_id=rule.created_by,
            add_time=timestamp(rule.created_at),
        ),
        community_id=rule.community_id,
        subject=_subject(rule),
    )


async def rule_removed(session: AsyncSession, rule: KeywordRule, by: str, now: datetime) -> None:
    await OUTBOX.add(
        session,
        events.KeywordRuleRemoved(
            community_id=rule.community_id,
            rule_id=rule.id,
            removed_by_user_id=by,
            remove_time=timestamp(now),
        ),
        community_id=rule.community_id,
        subject=_subject(rule),
    )


def _subject(rule: KeywordRule) -> str:
    return f"communities/{rule.community_id}/keyword-rules/{rule.id}"


_FACTS = {
    "hold": events.ContentHeld,
    "approve": events.ContentApproved,
    "hide": events.ContentHidden,
    "remove": events.ContentRemoved,
    "restore": events.ContentRestored,
    "appeal": events.ModerationAppealed,
}


async def moderated(
    session: AsyncSession, step: str, case: Case, actor: str, reason: str, now: datetime
) -> None:
    """The fact of one moderation step (the log's word for it); an appeal's decision is
    AppealDecided, and an overturn is also ContentRestored."""
    fields: dict[str, Any] = {
        "community_id": case.community_id,
        "target_kind": case.target_kind,
        "target_id": case.target_id,
        "author_user_id": case.author_user_id,
        "actor_user_id": actor,
        "reason": reason,
        "version": case.version,
        "time": timestamp(now),
    }
    facts: list[Message] = []
    if step in ("uphold", "overturn"):
        facts.append(events.AppealDecided(**fields, overturned=step == "overturn"))
    if step == "overturn":
        facts.append(events.ContentRestored(**fields))
    if step in _FACTS:
        facts.append(_FACTS[step](**fields))
    for fact in facts:
        await OUTBOX.add(
            session,
            fact,
            community_id=case.community_id,
            subject=f"communities/{case.community_id}/{case.target_kind}s/{case.target_id}",
        )


async def follow_post(
    session: AsyncSession, before: Post, decision: Decision, by: str, now: datetime
) -> None:
    """The post facts a moderation step means to their consumers: leaving sight is a
    deletion to them, coming back a restoration, the first showing a creation (0053)."""
    after = decision.post
    facts = PostEvents(session)
    if before.visible and not after.visible:
        await facts.withdrawn(after, by, now)
        await facts.acceptance_ended_with(after, by)
    elif after.visible and not before.visible:
        if decision.first_shown:
            await facts.created(after)
        else:
            await facts.restored(after, by, now)
            await facts.acceptance_resumed_with(after, by)


async def follow_comment(
    session: AsyncSession,
    before: discussion.Comment,
    decision: CommentDecision,
    by: str,
    now: datetime,
) -> None:
    """What a moderation step means to a comment's answer count and facts: CommentAdded
    once, when first shown; a hidden answer counts no more and loses its acceptance
    (AnswerUnaccepted); a restored one counts again (decision 0055)."""
    after = decision.comment
    comments = CommentRepository(session)
    if before.visible and not after.visible:
        if after.is_answer:
            await comments.uncount_answer(after.post_id)
            posts = PostRepository(session)
            question = await posts.get(after.community_id, after.post_id, for_update=True)
            if question is not None and question.accepted_answer_id == after.id:
                unaccepted = discussion.unaccept(question)
                await posts.save(unaccepted)
                await PostEvents(session).answer_unaccepted(
                    unaccepted, after.id, after.author_user_id, by, now
                )
    elif after.visible and not before.visible:
        if decision.first_shown:
            await DiscussionEvents(session).comment_added(after)
        if after.is_answer:
            await comments.count_answer(after.post_id, now)
