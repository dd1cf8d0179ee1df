"""gRPC handlers for questions and their answers: accepting one, withdrawing it, and the
queue of questions nobody has answered yet."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.discussion import domain
from services.content.discussion.store import CommentRepository
from services.content.posts.domain import Post
from services.content.posts.events import PostEvents
from services.content.posts.messages import present
from services.content.posts.store import PostRepository
from services.kit.access import Access, Role
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.validation import Violations
from studyhall.content.v1 import content_service_pb2 as pb


class AnswersApi:
    """The accepted answer of a question, and the unanswered questions."""

    def __init__(self, database: Database, access: Access, writer: Writer) -> None:
        self.database = database
        self.access = access
        self.writer = writer

    async def AcceptAnswer(
        self, request: pb.AcceptAnswerRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcceptAnswerResponse:
        caller = current_identity()
        community_id = request.community_id
        problems = Violations()
        problems.uuid("question_id", request.question_id)
        problems.uuid("answer_id", request.answer_id)
        problems.raise_if_any()
        standing = await self.access.require_reader(community_id, caller)
        moderator = domain.moderates(standing.role, caller.operator)

        async def accept(session: AsyncSession) -> pb.AcceptAnswerResponse:
            now = datetime.now(UTC)
            question = await self._question(
                session, community_id, request.question_id, caller, moderator
            )
            comments = CommentRepository(session)
            answer = await comments.get(community_id, request.answer_id)
            if answer is None:
                raise domain.comment_not_found(request.answer_id, community_id)
            await self._asker_or_moderator(
                question,
                caller,
                "accepting an answer",
                "accepting an answer to another member's question",
            )
            accepted, previous_id = domain.accept(question, answer)
            if accepted is not question:
                happened = PostEvents(session)
                previous = await comments.get(community_id, previous_id) if previous_id else None
                if previous is not None:
                    # Its acceptance ends first, one version before the new one begins.
                    await happened.answer_unaccepted(
                        replace(accepted, version=accepted.version - 1),
                        previous.id,
                        previous.author_user_id,
                        caller.user_id,
                        now,
                    )
                await PostRepository(session).save(accepted)
                await happened.answer_accepted(
                    accepted, answer.id, answer.author_user_id, caller.user_id, now
                )
            return pb.AcceptAnswerResponse(question=await _question_reply(session, accepted))

        return await self.writer.write(caller.user_id, request, pb.AcceptAnswerResponse, accept)

    async def UnacceptAnswer(
        self, request: pb.UnacceptAnswerRequest, context: grpc.aio.ServicerContext
    ) -> pb.UnacceptAnswerResponse:
        caller = current_identity()
        community_id = request.community_id
        problems = Violations()
        problems.uuid("question_id", request.question_id)
        problems.raise_if_any()
        standing = await self.access.require_reader(community_id, caller)
        moderator = domain.moderates(standing.role, caller.operator)

        async def withdraw(session: AsyncSession) -> pb.UnacceptAnswerResponse:
            now = datetime.now(UTC)
            question = await self._question(
                session, community_id, request.question_id, caller, moderator
            )
            await self._asker_or_moderator(
                question,
                caller,
                "withdrawing an accepted answer",
                "withdrawing the accepted answer of another member's question",
            )
            previous_id = question.accepted_answer_id
            withdrawn = domain.unaccept(question)
            await PostRepository(session).save(withdrawn)
            assert previous_id is not None
            previous = await CommentRepository(session).get(community_id, previous_id)
            if previous is not None:
                await PostEvents(session).answer_unaccepted(
                    withdrawn, previous.id, previous.author_user_id, caller.user_id, now
                )
            return pb.UnacceptAnswerResponse(question=await _question_reply(session, withdrawn))

        return await self.writer.write(caller.user_id, request, pb.UnacceptAnswerResponse, withdraw)

    async def ListUnansweredQuestions(
        self, request: pb.ListUnansweredQuestionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListUnansweredQuestionsResponse:
        caller = current_identity()
        community_id = request.community_id
        problems = Violations()
        page = read_page(problems, request, ["unanswered", community_id, request.topic_id])
        problems.raise_if_any()
        await self.access.require_role(
            community_id, caller, Role.MODERATOR, "reading the unanswered questions"
        )
        async with self.database.read() as session:
            found = await PostRepository(session).unanswered(
                community_id, request.topic_id or None, page.after, page.size + 1
            )
            questions, token = page_of(found, page, _published)
            shown = await present(session, questions)
        return pb.ListUnansweredQuestionsResponse(questions=shown, next_page_token=token)

    async def _question(
        self,
        session: AsyncSession,
        community_id: str,
        question_id: str,
        caller: Identity,
        moderator: bool,
    ) -> Post:
        """The question, locked: accepts and withdrawals of one question take turns."""
        found = await PostRepository(session).get(community_id, question_id, for_update=True)
        return domain.seen(found, question_id, community_id, caller.user_id, moderator)

    async def _asker_or_moderator(
        self, question: Post, caller: Identity, what: str, for_another: str
    ) -> None:
        """The asker, or a moderator for another member's question (the role is what a
        caller is told first); a member who is not muted, in a community not archived."""
        community_id = question.community_id
        if not question.author_user_id or question.author_user_id != caller.user_id:
            await self.access.require_role(community_id, caller, Role.MODERATOR, for_another)
        await self.access.require_voice(community_id, caller, what, writable=True)


def _published(post: Post) -> tuple[datetime, str]:
    return (post.published_at or post.created_at, post.id)


async def _question_reply(session: AsyncSession, question: Post) -> pb.Post:
    [shown] = await present(session, [question])
    return shown
