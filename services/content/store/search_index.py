"""The search index's documents, written in the transaction of the post or comment they
describe: what search finds is what the database holds (docs/decisions/0039).

A post that is not published (a draft, a deleted post) has no documents; its comments keep
theirs, and search joins the post's state, so they show again when the post is restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.store.tables import comments, posts, search_documents
from services.content.text import community_term, index_terms

POST = "post"
BODY = "body"
COMMENT = "comment"


@dataclass(frozen=True)
class PostText:
    post_id: str
    community_id: str
    published: bool
    title: str
    summary: str
    tags: Sequence[str]
    body: str


def body_doc_id(post_id: str) -> str:
    return f"{post_id}:body"


# A search document's row: doc_id, post_id, community_id, kind, terms.
Document = dict[str, str]


def post_documents(text: PostText) -> list[Document]:
    """The search documents of a post as `text` says it now (none when it is not published).
    Cutting the text into terms costs more than writing them: CreatePost does it before its
    group's transaction, which then holds the writer for less."""
    if not text.published:
        return []
    community = community_term(text.community_id)
    head = index_terms(text.title, text.summary, *text.tags)
    documents = [_row(text.post_id, text, POST, [community, *head])]
    body = index_terms(text.body)
    if body:
        documents.append(_row(body_doc_id(text.post_id), text, BODY, [community, *body]))
    return documents


async def index_posts(session: AsyncSession, texts: Sequence[PostText]) -> None:
    """Replace the documents of `texts`' posts by what they say now."""
    if not texts:
        return
    ids = [doc for text in texts for doc in (text.post_id, body_doc_id(text.post_id))]
    await session.execute(delete(search_documents).where(search_documents.c.doc_id.in_(ids)))
    await add_documents(session, [row for text in texts for row in post_documents(text)])


async def add_documents(session: AsyncSession, documents: Sequence[Document]) -> None:
    """Index new posts' `documents` (post_documents'): they have none to replace."""
    if documents:
        await session.execute(search_documents.insert(), documents)


async def index_comment(
    session: AsyncSession, comment_id: str, post_id: str, community_id: str, body: str
) -> None:
    """Replace the comment's document; a comment without a body (deleted, erased) has none."""
    await session.execute(delete(search_documents).where(search_documents.c.doc_id == comment_id))
    terms = index_terms(body)
    if terms:
        await session.execute(
            search_documents.insert().values(
                doc_id=comment_id,
                post_id=post_id,
                community_id=community_id,
                kind=COMMENT,
                terms=" ".join([community_term(community_id), *terms]),
            )
        )


async def unindex_author(session: AsyncSession, community_id: str, user_id: str) -> None:
    """Drop the documents of what a member wrote in a community (their text is erased)."""
    own_posts = select(posts.c.id).where(
        posts.c.community_id == community_id, posts.c.author_user_id == user_id
    )
    own_comments = select(comments.c.id).where(
        comments.c.community_id == community_id, comments.c.author_user_id == user_id
    )
    await session.execute(
        delete(search_documents).where(
            search_documents.c.community_id == community_id,
            (search_documents.c.post_id.in_(own_posts) & search_documents.c.kind.in_([POST, BODY]))
            | search_documents.c.doc_id.in_(own_comments),
        )
    )


def _row(doc_id: str, text: PostText, kind: str, terms: list[str]) -> dict[str, str]:
    return {
        "doc_id": doc_id,
        "post_id": text.post_id,
        "community_id": text.community_id,
        "kind": kind,
        "terms": " ".join(terms),
    }
