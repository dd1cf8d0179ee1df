"""CreatePost under load, next to the echo + token baseline and JoinCommunity, measured in the
same run.

    make bench-content                              # SQLite, the embedded default
    make bench-content BENCH_ARGS="--seconds 10 --rounds 1"
    make bench-content BENCH_ARGS="--store postgresql"
    make bench-content BENCH_ARGS="--search"          # bench/content_search.py

Each round offers three loads from the same client, `--concurrency` calls in flight, every
call signed by a user of its own (so each pays a full ES256 check, as a caller seen for the
first time does):

- echo + token: `--replicas` bare grpc.aio servers that verify the caller's token and answer
  JoinCommunity with an empty response (bench.members' baseline);
- JoinCommunity: the members service as bench.members runs it (API replicas, the relay and
  the consumers in processes of their own), new users joining a community of `--members`;
- CreatePost: the content service as Kubernetes runs it, `--replicas` API processes and the
  outbox relay (publishing to a real nats-server) each in a process of their own, members of
  the community publishing articles with a body of `--body-chars` characters.

Content learns communities and roles from members' events; here its projection tables
(`access_communities`, `access_roles`) are seeded in bulk instead, with `--communities`
communities, the posting members and `--posts` earlier posts in the community. Its consumers
are not started: nothing arrives for them while posts are offered. After the load the outbox
must drain, and every acknowledged post must have its PostCreated published.

The figures to watch are the ratios CreatePost/echo+token and JoinCommunity/echo+token of
one round (target: CreatePost's at least JoinCommunity's): rates measured minutes apart on a
shared machine are not comparable, ratios within a round are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench import content_search
from bench.members import (
    free_port,
    offer_joins,
    process,
    start_echo,
    start_members,
    wait_for_port,
)
from bench.members import seed as seed_members
from bench.support import (
    BROKER,
    Method,
    Result,
    drain,
    machine_facts,
    offer_calls,
    profiling,
    wait_serving,
)
from services.content.store import tables as content_tables
from services.kit.auth import LocalSigner
from services.kit.database import Database
from services.kit.migrations import migrate
from services.members.store.tables import outbox as members_outbox
from studyhall.content.v1 import content_service_pb2 as pb
from tests.harness.servers import (
    find_nats_server,
    provide_nats,
    provide_postgres,
    provide_redis,
)

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "content" / "store" / "migrations"
CREATE_POST = Method(
    "/studyhall.content.v1.ContentService/CreatePost",
    pb.CreatePostRequest,
    pb.CreatePostResponse,
)
POST_CREATED = pb.DESCRIPTOR.package + ".PostCreated"
BATCH = 5000
# An article body: plain text, no links (a link would ask for `post_links`).
SENTENCE = (
    "Practice reading aloud every morning, write down three new words with an example "
    "sentence each, then review yesterday's list before starting the next chapter. "
)


def article_body(chars: int) -> str:
    return (SENTENCE * (chars // len(SENTENCE) + 1))[:chars].rstrip()


async def seed_content(
    url: str, community_id: str, community_count: int, authors: list[str], posts: int
) -> None:
    """Content's projection of members (the community among `community_count`, its owner and
    `authors` as members) and `posts` earlier posts in it, inserted in bulk into a schema
    built by the service's own migrations."""
    access = content_tables.access
    database = Database(url)
    await migrate(database, MIGRATIONS, service="content")
    now = datetime.now(UTC)
    communities = [
        {
            "community_id": community_id if index == 0 else str(uuid.uuid4()),
            "visibility": 1,
            "version": 1,
            "archived": False,
        }
        for index in range(community_count)
    ]
    roles: list[dict[str, Any]] = [
        {
            "community_id": community_id,
            "user_id": user_id,
            "role": 4 if number == 0 else 1,
            "active": True,
            "version": 1,
            "muted_until": None,
            "level": 1,
            "level_order": 0,
        }
        for number, user_id in enumerate(["owner-0", *authors])
    ]
    body = article_body(1000)
    earlier = [
        {
            "id": str(uuid.uuid4()),
            "community_id": community_id,
            "author_user_id": f"seed-author-{number % 1000}",
            "kind": pb.POST_KIND_ARTICLE,
            "title": f"Week {number} notes",
            "body": body,
            "url": "",
            "tags": ["notes"],
            "created_at": now - timedelta(minutes=posts - number),
            "published_at": now - timedelta(minutes=posts - number),
            "version": 1,
            "summary": "",
            "state": pb.POST_STATE_PUBLISHED,
        }
        for number in range(posts)
    ]
    async with database.write() as session:
        for table, rows in (
            (access.communities, communities),
            (access.roles, roles),
            (content_tables.posts, earlier),
        ):
            for start in range(0, len(rows), BATCH):
                await session.execute(table.insert(), rows[start : start + BATCH])
    await database.close()


def start_content(
    stack: contextlib.ExitStack,
    env: dict[str, str],
    workdir: Path,
    round_number: int,
    replicas: int,
) -> tuple[dict[str, int], list[int]]:
    """The content service as Kubernetes runs it: API replicas and the outbox relay in
    processes of their own. Returns every process's pid and the API replicas' ports."""
    pids: dict[str, int] = {}
    api_ports: list[int] = []
    for mode, name in [("relay", "relay")] + [("serve", f"api {n}") for n in range(replicas)]:
        port = free_port()
        child = stack.enter_context(
            process(
                [sys.executable, "-m", "services.content", mode],
                {
                    **env,
                    "STUDYHALL_RELAY": "external",
                    "STUDYHALL_CONSUMERS": "external",
                    "STUDYHALL_CONTENT_GRPC_PORT": str(port),
                    "STUDYHALL_CONTENT_METRICS_PORT": str(free_port()),
                },
                workdir / f"content-{round_number}-{name.replace(' ', '-')}.log",
            )
        )
        wait_for_port(port, child)
        asyncio.run(wait_serving(port, "content"))
        pids[name] = child.pid
        if mode == "serve":
            api_ports.append(port)
    return pids, api_ports


async def offer_posts(
    ports: list[int],
    server_pids: dict[str, int],
    community_id: str,
    tokens: list[str],
    options: argparse.Namespace,
    posted: set[str],
) -> Result:
    """Members publishing articles, each call by an author of its own; the ids of the posts
    acknowledged go into `posted`."""
    body = article_body(options.body_chars)
    template = pb.CreatePostRequest(
        community_id=community_id,
        kind=pb.POST_KIND_ARTICLE,
        title="What I learned this week",
        summary="Notes from the reading group",
        body=body,
        tags=["notes", "week"],
    )

    def request() -> pb.CreatePostRequest:
        if not options.request_ids:
            return template
        each = pb.CreatePostRequest()
        each.CopyFrom(template)
        each.request_id = uuid.uuid4().hex
        return each

    def answered(reply: pb.CreatePostResponse) -> None:
        posted.add(reply.post.id)

    return await offer_calls(
        ports,
        server_pids,
        CREATE_POST,
        request,
        tokens,
        options.seconds,
        options.concurrency,
        answered=answered,
        exhausted="ran out of pre-signed authors: raise --authors",
    )


async def unpublished_posts(url: str, posted: set[str]) -> set[str]:
    """The acknowledged posts whose PostCreated the relay has not published."""
    outbox = content_tables.outbox
    database = Database(url)
    try:
        async with database.read() as session:
            subjects = await session.scalars(
                select(outbox.c.ce_subject).where(
                    outbox.c.event_type == POST_CREATED, outbox.c.published_at.is_not(None)
                )
            )
            published = {subject.rsplit("/", 1)[-1] for subject in subjects}
    finally:
        await database.close()
    return posted - published


def run(options: argparse.Namespace, workdir: Path) -> None:
    data_dir = workdir / "data"
    signer = LocalSigner.ensure(data_dir)
    facts = machine_facts(find_nats_server()[0])
    print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    with contextlib.ExitStack() as stack:
        nats_server = stack.enter_context(provide_nats(workdir / "nats"))
        redis_server = stack.enter_context(provide_redis(workdir / "redis"))
        if options.store == "postgresql":
            postgres = stack.enter_context(provide_postgres(workdir / "postgres"))
            suffix = uuid.uuid4().hex[:8]
            members_url = postgres.create_database(f"bench_members_{suffix}")
            content_url = postgres.create_database(f"bench_content_{suffix}")
        else:
            members_url = f"sqlite+aiosqlite:///{data_dir}/members.db"
            content_url = f"sqlite+aiosqlite:///{data_dir}/content.db"
        seeding = time.perf_counter()
        community = asyncio.run(seed_members(members_url, options.communities, options.members))
        authors = [f"author-{uuid.uuid4().hex[:12]}" for _ in range(options.authors)]
        asyncio.run(
            seed_content(content_url, community, options.communities, authors, options.posts)
        )
        print(
            f"seeded {options.communities:,} communities, {options.members:,} members of one "
            f"and, in content, {len(authors):,} posting members and {options.posts:,} earlier "
            f"posts in {time.perf_counter() - seeding:.0f} s ({options.store})"
        )
        minting = time.perf_counter()
        joiners = [
            signer.mint(f"joiner-{uuid.uuid4().hex[:12]}", ttl_seconds=3600)
            for _ in range(options.users)
        ]
        writers = [signer.mint(author, ttl_seconds=3600) for author in authors]
        print(
            f"signed {len(joiners) + len(writers):,} user tokens in "
            f"{time.perf_counter() - minting:.1f} s"
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STUDYHALL_")},
            "STUDYHALL_DATA_DIR": str(data_dir),
            "STUDYHALL_NATS_URL": nats_server.url,
            "STUDYHALL_REDIS_URL": redis_server.url,
            "STUDYHALL_MEMBERS_DATABASE_URL": members_url,
            "STUDYHALL_CONTENT_DATABASE_URL": content_url,
            "STUDYHALL_LOG_LEVEL": "WARNING",
            # Limits on, as in production, so their cost is measured; high enough that the
            # load of the measurement itself is never refused (as bench.members does).
            "STUDYHALL_RATE_LIMIT_PER_CALLER": "100000/second",
            "STUDYHALL_RATE_LIMIT_PER_COMMUNITY": "100000/second",
        }
        signed: list[Result] = []
        joins: list[Result] = []
        posts: list[Result] = []
        joiners_used = writers_used = 0
        posted: set[str] = set()

        def with_broker(pids: dict[str, int]) -> dict[str, int]:
            if nats_server.pid is not None:
                pids[BROKER] = nats_server.pid
            return pids

        for round_number in range(options.rounds):
            with contextlib.ExitStack() as servers:
                pids, ports = start_echo(
                    servers, env, workdir, round_number, options.replicas, verify=True
                )
                signed.append(
                    asyncio.run(
                        offer_joins(
                            ports,
                            pids,
                            community,
                            joiners,
                            options.seconds,
                            options.concurrency,
                            reuse_tokens=True,
                        )
                    )
                )
            with contextlib.ExitStack() as servers:
                pids, ports = start_members(servers, env, workdir, round_number, options.replicas)
                result = asyncio.run(
                    offer_joins(
                        ports,
                        with_broker(pids),
                        community,
                        joiners[joiners_used:],
                        options.seconds,
                        options.concurrency,
                    )
                )
                joiners_used += result.latency.count + result.errors + 100
                result.backlog, result.drain_seconds = drain(members_url, members_outbox)
                joins.append(result)
            with contextlib.ExitStack() as servers:
                pids, ports = start_content(servers, env, workdir, round_number, options.replicas)
                if options.profile:
                    servers.enter_context(
                        profiling(
                            pids["api 0"], options.seconds, f"{options.profile}.{round_number}"
                        )
                    )
                result = asyncio.run(
                    offer_posts(
                        ports,
                        with_broker(pids),
                        community,
                        writers[writers_used:],
                        options,
                        posted,
                    )
                )
                writers_used += result.latency.count + result.errors + 100
                result.backlog, result.drain_seconds = drain(content_url, content_tables.outbox)
                posts.append(result)
        missing = asyncio.run(unpublished_posts(content_url, posted))
        if missing:
            raise SystemExit(
                f"{len(missing)} of {len(posted)} acknowledged posts have no published "
                f"PostCreated, e.g. {sorted(missing)[:3]}"
            )
        print(f"every acknowledged post's PostCreated was published ({len(posted):,} posts)")
    report(options, signed, joins, posts)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def report(
    options: argparse.Namespace,
    signed: list[Result],
    joins: list[Result],
    posts: list[Result],
) -> None:
    print(
        f"\nCreatePost ({options.body_chars:,}-character articles"
        f"{', each with a request id' if options.request_ids else ''}) into a community "
        f"with {options.posts:,} earlier posts, JoinCommunity into one of {options.members:,} "
        f"members among {options.communities:,} communities; {options.concurrency} concurrent "
        f"callers, {options.seconds:.0f} s x {options.rounds} rounds, store {options.store}, "
        f"{options.replicas} API replica(s) of each service and as many echo servers, relays "
        "(and members' consumers) in processes of their own"
    )
    for name, results in (
        ("echo + token", signed),
        ("JoinCommunity", joins),
        ("CreatePost", posts),
    ):
        rates = ", ".join(f"{r.rate:.0f}" for r in results)
        print(
            f"{name:<14} {median([r.rate for r in results]):7.0f} calls/s (rounds: {rates})  "
            f"p50 {median([r.latency.p50 * 1000 for r in results]):6.1f} ms  "
            f"p99 {median([r.latency.p99 * 1000 for r in results]):6.1f} ms  "
            f"server CPU {median([r.server_cpu_ms for r in results]):5.2f} ms/call  "
            f"whole machine {median([r.per_call_ms(r.busy_cores) for r in results]):5.2f} "
            f"ms/call  errors {sum(r.errors for r in results)}"
        )
    for name, results in (("join", joins), ("post", posts)):
        last = results[-1]
        print(
            f"server CPU per {name} by process (last round): "
            + ", ".join(f"{process} {ms:.2f} ms" for process, ms in last.cpu_by_process.items())
            + f", client {last.per_call_ms(last.client_cores):.2f} ms"
        )
    for name, results in (("members", joins), ("content", posts)):
        print(
            f"{name} outbox when the load stopped: "
            + ", ".join(
                f"{r.backlog} events, published {r.drain_seconds:.1f} s later" for r in results
            )
        )
    post_ratios, join_ratios = (
        [r.rate / s.rate for r, s in zip(results, signed, strict=True)]
        for results in (posts, joins)
    )
    for name, ratios in (("CreatePost", post_ratios), ("JoinCommunity", join_ratios)):
        print(
            f"ratio {name}/echo+token: median {median(ratios):.2f} "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    met = sum(p >= j for p, j in zip(post_ratios, join_ratios, strict=True))
    print(
        f"target CreatePost/echo+token >= JoinCommunity/echo+token: met in {met} of "
        f"{len(post_ratios)} rounds"
    )


def main() -> None:
    if {"--search", "--analyzers"} & set(sys.argv[1:]):
        # Search over a million seeded posts, or the analyzers compared: bench/content_search.py.
        content_search.main([arg for arg in sys.argv[1:] if arg != "--search"])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--communities", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--posts", type=int, default=20_000, help="earlier posts in content")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--replicas", type=int, default=2, help="API processes (and echo servers) side by side"
    )
    parser.add_argument("--users", type=int, default=40_000, help="pre-signed joiners")
    parser.add_argument("--authors", type=int, default=40_000, help="pre-signed posting members")
    parser.add_argument("--body-chars", type=int, default=2_000, help="article body length")
    parser.add_argument(
        "--request-ids",
        action="store_true",
        help="give each post a request id (an idempotency record per post); joins carry none",
    )
    parser.add_argument(
        "--profile",
        help="py-spy raw profile of the first content API replica, one file per round: PATH.N",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-content-") as scratch:
        run(options, Path(scratch))


if __name__ == "__main__":
    main()
