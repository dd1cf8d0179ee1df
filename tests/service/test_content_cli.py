"""`studyhall search` and `studyhall rules` against a running content service: watch a word,
list and remove it, find posts in Chinese and English, every command with `--json`; a
refusal exits non-zero naming the field. The CLI runs in a thread of this process (typer's
runner)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.kit.access import Role
from tests.support import rpcs_content
from tests.support.access import grant
from tests.support.cli import Cli, Served, served_on_sqlite

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
async def served(
    redis_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    directory: Path = tmp_path_factory.mktemp("content-cli")
    async with served_on_sqlite(
        rpcs_content.PROCESS, "content", directory, redis_url, nats_url
    ) as found:
        yield found


async def test_rules_and_search_through_the_cli(served: Served) -> None:
    community_id = str(uuid.uuid4())
    await grant(served.running, community_id, "mo", Role.MODERATOR)
    cli = Cli(served)
    rule = await cli.json("rules", "add", community_id, "代写", "--as", "mo")
    assert rule["phrase"] == "代写"
    refused = await cli(
        "post", "create", community_id, "--title", "代写论文", "--body", "私聊", "--as", "mo"
    )
    assert refused.exit_code != 0
    assert "title" in refused.output
    listed = await cli.json("rules", "list", community_id, "--as", "mo")
    assert [item["phrase"] for item in listed["rules"]] == ["代写"]
    assert "代写" in await cli.ok("rules", "list", community_id, "--as", "mo")
    await cli.ok("rules", "remove", community_id, rule["rule_id"], "--as", "mo")

    made = ("post", "create", community_id, "--title", "每天打卡 studying", "--body", "第一天")
    post_id = (await cli.ok(*made, "--as", "mo")).strip()
    found = await cli.json("search", community_id, "打卡", "--as", "mo")
    assert [hit["post"]["id"] for hit in found["hits"]] == [post_id]
    assert post_id in await cli.ok("search", community_id, "study", "--as", "mo")
    empty = await cli("search", community_id, "？", "--as", "mo")  # noqa: RUF001
    assert empty.exit_code != 0
    assert "query" in empty.output


async def test_review_through_the_cli(served: Served) -> None:
    """`studyhall rules add --hold`, then `studyhall review`: the held post in the queue,
    approved; another hidden, appealed by its author, restored by another moderator; the
    log; each with --json, and a refused step exits non-zero with the reason."""
    community_id = str(uuid.uuid4())
    for user, role in [("mo", Role.MODERATOR), ("ad", Role.ADMIN), ("bo", Role.MEMBER)]:
        await grant(served.running, community_id, user, role)
    cli = Cli(served)
    rule = await cli.json("rules", "add", community_id, "casino", "--hold", "--as", "mo")
    assert rule["action"] == "KEYWORD_RULE_ACTION_HOLD"
    assert "hold" in await cli.ok("rules", "list", community_id, "--as", "mo")
    made = ("post", "create", community_id, "--title", "Casino words", "--body", "Vocabulary")
    held = (await cli.ok(*made, "--as", "bo")).strip()

    queue = await cli.json("review", "queue", community_id, "--reason", "held", "--as", "mo")
    assert [case["target_id"] for case in queue["cases"]] == [held]
    assert held in await cli.ok("review", "queue", community_id, "--as", "mo")
    approved = await cli.json("review", "approve", community_id, held, "--as", "mo")
    assert approved["status"] == "MODERATION_STATUS_VISIBLE"

    refused = await cli("review", "hide", community_id, held, "--as", "mo")
    assert refused.exit_code != 0
    assert "reason" in refused.output
    await cli.ok("review", "hide", community_id, held, "--reason", "Off topic", "--as", "mo")
    appealed = await cli.json(
        "review", "appeal", community_id, held, "--statement", "It is vocabulary.", "--as", "bo"
    )
    assert appealed["appeal_open"] is True
    restored = await cli.ok(
        "review", "restore", community_id, held, "--reason", "Fair", "--as", "ad"
    )
    assert "visible" in restored
    log = await cli.json("review", "log", community_id, "--as", "mo")
    assert [entry["action"] for entry in log["entries"]] == [
        "overturn",
        "appeal",
        "hide",
        "approve",
        "hold",
    ]
    assert "overturn" in await cli.ok("review", "log", community_id, "--as", "mo")

    # A comment the rule holds: approved with --comment.
    said = await cli.json(
        "comment", "add", community_id, held, "--body", "casino again", "--as", "bo"
    )
    assert said["moderation_status"] == "MODERATION_STATUS_HELD"
    queued = await cli.ok("review", "queue", community_id, "--as", "mo")
    assert said["id"] in queued
    assert "comment" in queued
    shown = await cli.json("review", "approve", community_id, said["id"], "--comment", "--as", "mo")
    assert shown["target_kind"] == "MODERATION_TARGET_KIND_COMMENT"
