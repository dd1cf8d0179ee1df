"""`studyhall post`, `feed`, `search`, `comment`, `react`, `accept`, `questions`, `topic`
and `rules`: what a community writes, discusses and finds again, and the words it refuses,
in the content service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated

import typer
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from rich.markup import escape
from rich.table import Table

from services.cli.common import (
    AsJson,
    AsUser,
    RequestId,
    call,
    enum_option,
    metadata,
    out,
    show,
    stub,
)
from studyhall.content.v1 import content_service_pb2 as pb
from studyhall.content.v1 import content_service_pb2_grpc as pb_grpc

# Registered without a name: its groups and commands sit at the top of `studyhall`.
content_app = typer.Typer(no_args_is_help=True)
post_app = typer.Typer(help="Posts of a community: drafts, edits, pins.", no_args_is_help=True)
comment_app = typer.Typer(help="Comments on posts, and replies to them.", no_args_is_help=True)
topic_app = typer.Typer(help="Topics (channels) of a community.", no_args_is_help=True)
rules_app = typer.Typer(
    help="Keyword rules: watched words refused in posts and comments.", no_args_is_help=True
)
content_app.add_typer(post_app, name="post")
content_app.add_typer(comment_app, name="comment")
content_app.add_typer(topic_app, name="topic")
content_app.add_typer(rules_app, name="rules")

PageSize = Annotated[int, typer.Option(help="How many per page (at most 100; 0: the default).")]
PageToken = Annotated[str, typer.Option(help="The next page token a previous page printed.")]
Etag = Annotated[
    str,
    typer.Option(help="The etag you last read: the edit is refused if it is no longer current."),
]


def _request_id(given: str) -> str:
    return given or str(uuid.uuid4())


def _when(record: Message, field: str) -> str:
    """A timestamp field to the second, or "" when unset."""
    return getattr(record, field).ToJsonString()[:19] if record.HasField(field) else ""


def _posts_table(title: str, posts: Sequence[pb.Post]) -> Table:
    table = Table(title=title)
    for column in ("id", "kind", "title", "author", "published", "comments", "accepted answer"):
        table.add_column(column)
    for post in posts:
        table.add_row(
            post.id,
            pb.PostKind.Name(post.kind).removeprefix("POST_KIND_").lower(),
            escape(post.title),
            post.author_user_id,
            _when(post, "publish_time") or "draft",
            str(post.comment_count),
            post.accepted_answer_id,
        )
    return table


def _next_page(token: str) -> None:
    if token:
        out.print(f"next page: --page-token {token}")


# ---- posts ----------------------------------------------------------------------------------


@post_app.command("create")
def post_create(
    community_id: str,
    title: Annotated[str, typer.Option()],
    kind: Annotated[
        str, typer.Option(help="article, video, audio, link, resource or question.")
    ] = "article",
    body: Annotated[str, typer.Option(help="Required for articles and questions.")] = "",
    summary: Annotated[str, typer.Option(help="A short description shown in feeds.")] = "",
    url: Annotated[str, typer.Option(help="Required for link, video, audio, resource.")] = "",
    topic: Annotated[str, typer.Option(help="A topic id of the community.")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="Repeat for several tags.")] = None,
    draft: Annotated[
        bool, typer.Option("--draft", help="Save as a draft, visible to you alone.")
    ] = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Publish a post in a community (or save it as a draft); prints its id."""
    request = pb.CreatePostRequest(
        request_id=_request_id(request_id),
        community_id=community_id,
        kind=enum_option(pb.PostKind, "POST_KIND_", kind),  # type: ignore[arg-type]
        title=title,
        body=body,
        summary=summary,
        url=url,
        topic_id=topic,
        tags=tag or [],
        draft=draft,
    )
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(client.CreatePost, request, metadata(as_user))
    if as_json:
        show(reply.post, True, "post")
        return
    typer.echo(reply.post.id)


@post_app.command("show")
def post_show(
    community_id: str, post_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """Show a post."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.GetPost,
            pb.GetPostRequest(community_id=community_id, post_id=post_id),
            metadata(as_user),
        )
    show(reply.post, as_json, "post")


@post_app.command("edit")
def post_edit(
    community_id: str,
    post_id: str,
    title: Annotated[str | None, typer.Option()] = None,
    summary: Annotated[str | None, typer.Option()] = None,
    body: Annotated[str | None, typer.Option()] = None,
    url: Annotated[str | None, typer.Option()] = None,
    topic: Annotated[
        str | None, typer.Option(help="A topic id; an empty string files it under none.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="The new tags (replace the old); repeat.")
    ] = None,
    no_tags: Annotated[bool, typer.Option("--no-tags", help="Remove every tag.")] = False,
    etag: Etag = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Change the fields given, and only those (the author); the old values are kept as a
    revision."""
    if tag and no_tags:
        raise typer.BadParameter("give --tag or --no-tags, not both")
    post = pb.Post()
    paths: list[str] = []
    for path, value in (
        ("title", title),
        ("summary", summary),
        ("body", body),
        ("url", url),
        ("topic_id", topic),
    ):
        if value is not None:
            setattr(post, path, value)
            paths.append(path)
    if tag or no_tags:
        post.tags.extend(tag or [])
        paths.append("tags")
    if not paths:
        raise typer.BadParameter(
            "name a field to change: --title, --summary, --body, --url, --topic, --tag or --no-tags"
        )
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.UpdatePost,
            pb.UpdatePostRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                post_id=post_id,
                post=post,
                update_mask=FieldMask(paths=paths),
                etag=etag,
            ),
            metadata(as_user),
        )
    show(reply.post, as_json, "post")


@post_app.command("publish")
def post_publish(
    community_id: str,
    post_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Make a draft visible to the community (its author)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.PublishPost,
            pb.PublishPostRequest(
                request_id=_request_id(request_id), community_id=community_id, post_id=post_id
            ),
            metadata(as_user),
        )
    show(reply.post, as_json, "post")


@post_app.command("delete")
def post_delete(
    community_id: str,
    post_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Hide a post from everyone but its author and moderators (the author, moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.DeletePost,
            pb.DeletePostRequest(
                request_id=_request_id(request_id), community_id=community_id, post_id=post_id
            ),
            metadata(as_user),
        )
    show(reply.post, as_json, "post")


@post_app.command("restore")
def post_restore(
    community_id: str,
    post_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Bring a deleted post back (moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.RestorePost,
            pb.RestorePostRequest(
                request_id=_request_id(request_id), community_id=community_id, post_id=post_id
            ),
            metadata(as_user),
        )
    show(reply.post, as_json, "post")


@post_app.command("pin")
def post_pin(
    community_id: str,
    post_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Pin a published post to the top of the feeds (moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.PinPost,
            pb.PinPostRequest(
                request_id=_request_id(request_id), community_id=community_id, post_id=post_id
            ),
            metadata(as_user),
        )
    show(reply.post, as_json, "post")


@post_app.command("unpin")
def post_unpin(
    community_id: str,
    post_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Unpin a post (moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.UnpinPost,
            pb.UnpinPostRequest(
                request_id=_request_id(request_id), community_id=community_id, post_id=post_id
            ),
            metadata(as_user),
        )
    show(reply.post, as_json, "post")


@post_app.command("revisions")
def post_revisions(
    community_id: str,
    post_id: str,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A post's edits, newest first: who, when, and what the changed fields held before
    (the author, moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.ListPostRevisions,
            pb.ListPostRevisionsRequest(
                community_id=community_id,
                post_id=post_id,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "revisions")
        return
    table = Table(title=f"revisions of {post_id}")
    for column in ("number", "editor", "edited", "changed", "before"):
        table.add_column(column)
    for revision in reply.revisions:
        before = {
            field.name: value
            for field, value in revision.previous.ListFields()
            if field.name in revision.changed_fields
        }
        table.add_row(
            str(revision.number),
            revision.editor_user_id,
            _when(revision, "edit_time"),
            ", ".join(revision.changed_fields),
            escape(
                "; ".join(
                    f"{name}: {', '.join(value) if name == 'tags' else value}"
                    for name, value in before.items()
                )
            ),
        )
    out.print(table)
    _next_page(reply.next_page_token)


@content_app.command("feed")
def feed(
    community_id: str,
    topic: Annotated[str, typer.Option(help="One topic's feed.")] = "",
    top: Annotated[
        bool, typer.Option("--top", help="Most engaged in the last 7 days first.")
    ] = False,
    drafts: Annotated[bool, typer.Option("--drafts", help="Your own drafts instead.")] = False,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's posts: newest first with the pinned on top, the top ones, or drafts."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.ListPosts,
            pb.ListPostsRequest(
                community_id=community_id,
                topic_id=topic,
                order=pb.FEED_ORDER_TOP if top else pb.FEED_ORDER_NEWEST,
                drafts=drafts,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "feed")
        return
    if reply.pinned:
        out.print(_posts_table("pinned", reply.pinned))
    title = "drafts" if drafts else "top posts" if top else "posts"
    out.print(_posts_table(f"{title} ({len(reply.posts)})", reply.posts))
    _next_page(reply.next_page_token)


# ---- comments, reactions, answers -----------------------------------------------------------


@comment_app.command("add")
def comment_add(
    community_id: str,
    post_id: str,
    body: Annotated[str, typer.Option(help="1-10,000 characters.")],
    reply_to: Annotated[
        str, typer.Option("--reply-to", help="A top-level comment of the post to reply to.")
    ] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Comment on a post (on a question: answer it), or reply to a comment; prints its id."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.AddComment,
            pb.AddCommentRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                post_id=post_id,
                parent_comment_id=reply_to,
                body=body,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.comment, True, "comment")
        return
    typer.echo(reply.comment.id)


@comment_app.command("edit")
def comment_edit(
    community_id: str,
    comment_id: str,
    body: Annotated[str, typer.Option(help="The new text.")],
    etag: Etag = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Change a comment's text (its author)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.UpdateComment,
            pb.UpdateCommentRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                comment_id=comment_id,
                body=body,
                etag=etag,
            ),
            metadata(as_user),
        )
    show(reply.comment, as_json, "comment")


@comment_app.command("delete")
def comment_delete(
    community_id: str,
    comment_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Delete a comment; it keeps its place in the thread (its author, moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.DeleteComment,
            pb.DeleteCommentRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                comment_id=comment_id,
            ),
            metadata(as_user),
        )
    show(reply.comment, as_json, "comment")


@comment_app.command("list")
def comment_list(
    community_id: str,
    post_id: str,
    replies_to: Annotated[
        str, typer.Option("--replies-to", help="The replies to this top-level comment.")
    ] = "",
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A post's top-level comments, or one comment's replies, oldest first."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.ListComments,
            pb.ListCommentsRequest(
                community_id=community_id,
                post_id=post_id,
                parent_comment_id=replies_to,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "comments")
        return
    table = Table(title=f"{'replies' if replies_to else 'comments'} ({len(reply.comments)})")
    for column in ("id", "author", "written", "replies", "answer", "body"):
        table.add_column(column)
    for comment in reply.comments:
        answer = "accepted" if comment.accepted else "yes" if comment.is_answer else ""
        table.add_row(
            comment.id,
            comment.author_user_id,
            _when(comment, "create_time"),
            str(comment.reply_count),
            answer,
            escape(comment.body) if not comment.HasField("delete_time") else "(deleted)",
        )
    out.print(table)
    _next_page(reply.next_page_token)


@content_app.command("react")
def react(
    community_id: str,
    post: Annotated[str, typer.Option(help="React to this post.")] = "",
    comment: Annotated[str, typer.Option(help="React to this comment.")] = "",
    kind: Annotated[
        str, typer.Option(help="like, helpful, insightful, thanks or celebrate.")
    ] = "like",
    undo: Annotated[bool, typer.Option("--undo", help="Take your reaction back.")] = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """React to a post or a comment (once per kind), or take it back; prints the counts."""
    if bool(post) == bool(comment):
        raise typer.BadParameter("give --post or --comment")
    reaction = enum_option(pb.ReactionKind, "REACTION_KIND_", kind)
    request: pb.ReactRequest | pb.UnreactRequest = (pb.UnreactRequest if undo else pb.ReactRequest)(
        request_id=_request_id(request_id),
        community_id=community_id,
        kind=reaction,  # type: ignore[arg-type]
    )
    if post:
        request.post_id = post
    else:
        request.comment_id = comment
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(client.Unreact if undo else client.React, request, metadata(as_user))
    if as_json:
        show(reply, True, "reactions")
        return
    for count in reply.reactions:
        name = pb.ReactionKind.Name(count.kind).removeprefix("REACTION_KIND_").lower()
        typer.echo(f"{name} {count.count}")


@content_app.command("accept")
def accept(
    community_id: str,
    question_id: str,
    answer_id: Annotated[
        str, typer.Argument(help="A top-level comment of the question.", show_default=False)
    ] = "",
    withdraw: Annotated[
        bool, typer.Option("--withdraw", help="Withdraw the accepted answer instead.")
    ] = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Accept an answer to a question, or withdraw the accepted one (the asker, moderators)."""
    if bool(answer_id) == withdraw:
        raise typer.BadParameter("give an ANSWER_ID to accept, or --withdraw")
    with stub("content", pb_grpc.ContentServiceStub) as client:
        if withdraw:
            reply = call(
                client.UnacceptAnswer,
                pb.UnacceptAnswerRequest(
                    request_id=_request_id(request_id),
                    community_id=community_id,
                    question_id=question_id,
                ),
                metadata(as_user),
            )
        else:
            reply = call(
                client.AcceptAnswer,
                pb.AcceptAnswerRequest(
                    request_id=_request_id(request_id),
                    community_id=community_id,
                    question_id=question_id,
                    answer_id=answer_id,
                ),
                metadata(as_user),
            )
    show(reply.question, as_json, "question")


@content_app.command("questions")
def questions(
    community_id: str,
    topic: Annotated[str, typer.Option(help="One topic's questions.")] = "",
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Published questions nobody has answered yet, oldest first (moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.ListUnansweredQuestions,
            pb.ListUnansweredQuestionsRequest(
                community_id=community_id,
                topic_id=topic,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "questions")
        return
    out.print(_posts_table(f"unanswered questions ({len(reply.questions)})", reply.questions))
    _next_page(reply.next_page_token)


# ---- topics ---------------------------------------------------------------------------------


@topic_app.command("create")
def topic_create(
    community_id: str,
    name: Annotated[str, typer.Option(help="1-80 characters, unique in the community.")],
    description: str = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Create a topic in a community (admins); prints its id."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.CreateTopic,
            pb.CreateTopicRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                name=name,
                description=description,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.topic, True, "topic")
        return
    typer.echo(reply.topic.id)


@topic_app.command("edit")
def topic_edit(
    community_id: str,
    topic_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    etag: Etag = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Rename a topic or change its description (admins)."""
    topic = pb.Topic()
    paths: list[str] = []
    for path, value in (("name", name), ("description", description)):
        if value is not None:
            setattr(topic, path, value)
            paths.append(path)
    if not paths:
        raise typer.BadParameter("name a field to change: --name or --description")
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.UpdateTopic,
            pb.UpdateTopicRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                topic_id=topic_id,
                topic=topic,
                update_mask=FieldMask(paths=paths),
                etag=etag,
            ),
            metadata(as_user),
        )
    show(reply.topic, as_json, "topic")


@topic_app.command("list")
def topic_list(
    community_id: str,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's topics, oldest first."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.ListTopics,
            pb.ListTopicsRequest(
                community_id=community_id, page_size=page_size, page_token=page_token
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "topics")
        return
    table = Table(title=f"topics ({len(reply.topics)})")
    for column in ("id", "name", "description"):
        table.add_column(column)
    for topic in reply.topics:
        table.add_row(topic.id, escape(topic.name), escape(topic.description))
    out.print(table)
    _next_page(reply.next_page_token)


# ---- search ---------------------------------------------------------------------------------


@content_app.command("search")
def search(
    community_id: str,
    query: Annotated[str, typer.Argument(help="Words to find, in Chinese, English or both.")],
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's posts holding every word of the query, best match first."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.SearchPosts,
            pb.SearchPostsRequest(
                community_id=community_id,
                query=query,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "search")
        return
    table = Table(title=f"found ({len(reply.hits)})")
    for column in ("id", "title", "author", "found in"):
        table.add_column(column)
    for hit in reply.hits:
        table.add_row(hit.post.id, escape(hit.post.title), hit.post.author_user_id, hit.matched_in)
    out.print(table)
    _next_page(reply.next_page_token)


# ---- keyword rules --------------------------------------------------------------------------


@rules_app.command("add")
def rules_add(
    community_id: str,
    phrase: Annotated[str, typer.Argument(help="A word or phrase, Chinese or not.")],
    hold: Annotated[
        bool, typer.Option("--hold", help="Hold posts holding it for review instead.")
    ] = False,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Watch a word or phrase: posts and comments holding it are refused, or with --hold
    posts are held for review (`studyhall review queue`) (moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.AddKeywordRule,
            pb.AddKeywordRuleRequest(
                request_id=_request_id(request_id),
                community_id=community_id,
                phrase=phrase,
                action=pb.KEYWORD_RULE_ACTION_HOLD if hold else pb.KEYWORD_RULE_ACTION_BLOCK,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.rule, True, "rule")
        return
    typer.echo(reply.rule.rule_id)


@rules_app.command("list")
def rules_list(
    community_id: str,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's keyword rules, oldest first (moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.ListKeywordRules,
            pb.ListKeywordRulesRequest(
                community_id=community_id, page_size=page_size, page_token=page_token
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "rules")
        return
    table = Table(title=f"keyword rules ({len(reply.rules)})")
    for column in ("id", "phrase", "action", "added by", "added"):
        table.add_column(column)
    for rule in reply.rules:
        action = "hold" if rule.action == pb.KEYWORD_RULE_ACTION_HOLD else "block"
        table.add_row(
            rule.rule_id,
            escape(rule.phrase),
            action,
            rule.created_by_user_id,
            _when(rule, "create_time"),
        )
    out.print(table)
    _next_page(reply.next_page_token)


@rules_app.command("remove")
def rules_remove(
    community_id: str,
    rule_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Stop watching a word or phrase (moderators)."""
    with stub("content", pb_grpc.ContentServiceStub) as client:
        reply = call(
            client.RemoveKeywordRule,
            pb.RemoveKeywordRuleRequest(
                request_id=_request_id(request_id), community_id=community_id, rule_id=rule_id
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply.rule, True, "rule")
        return
    typer.echo(f"removed {reply.rule.rule_id}")
