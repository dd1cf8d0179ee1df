"""Search over many posts: SearchPosts' query and the newest feed of the largest community,
each next to the raw FTS5 / tsquery query in the same run; and the analyzers compared.

    make bench-content BENCH_ARGS="--search"                         # SQLite, 1,000,000 posts
    make bench-content BENCH_ARGS="--search --store postgresql"      # needs a PostgreSQL URL
    make bench-content BENCH_ARGS="--search --posts 100000 --seconds 5"
    make bench-content BENCH_ARGS="--analyzers"                      # decision 0039's table

The posts are seeded through the store (PostRepository.add_many, which writes the search
documents as the service does), skewed so that the largest community holds a tenth of them,
and kept between runs: a SQLite file under `.bench/`, or a PostgreSQL database named after
the size (`--postgres-url`, default STUDYHALL_TEST_POSTGRES_URL; a server of its own, since
the harness's throwaway one would lose the seed). `--concurrency` callers (32) ask, in turn,
a common two-character Chinese word, an English stem and mixed text in the largest
community; the raw query is the bare FTS5 MATCH or tsquery with the community's term,
ranked, without the joins that drop drafts, deleted posts and paid bodies.

The corpus is synthetic (bench.content_search.corpus): sentences drawn from a vocabulary of
Chinese words and English words in several inflections, so which posts hold a word is known
exactly, which is what the analyzers' recall is measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.support import machine_facts
from services.content import text as analyzer
from services.content.posts.domain import Post, PostKind
from services.content.posts.store import PostRepository, documents_of
from services.content.search.store import search
from services.kit.database import Database
from services.kit.migrations import migrate

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "content" / "store" / "migrations"
CACHE = ROOT / ".bench"
SEED = 20261204
BATCH = 2_000

# The vocabulary: Chinese words of a study community (two-character ones among them), the
# glue between them, and English words with the inflections a stemmer must bring together.
_WORDS = (
    "运营 定位 画像 打卡 社区 用户 学习 英语 复盘 笔记 阅读 挑战 目标 计划 方法 课程 直播 分享 "
    "写作 口语 听力 单词 语法 考试 雅思 托福 编程 算法 项目 读书 时间 习惯 坚持 效率 反馈 "
    "练习 老师 同学 作业 讨论 问题 答案 资料 视频 音频 文章 经验 总结 成长 朋友 周末 每天"
)
CHINESE = _WORDS.split()
_GLUE = "的 和 在 了 是 也 要 把 给 很 都 就"
GLUE = _GLUE.split()
# Phrases that hold a query word's characters across a word boundary (一定|位于 holds 定位)
# without meaning it: where cutting into n-grams finds what it should not.
TRAPS = ("一定位于", "好运营造", "恢复盘点", "动画像素")
ENGLISH = {
    "study": ("study", "studies", "studying", "studied"),
    "read": ("read", "reads", "reading"),
    "practice": ("practice", "practices", "practicing", "practiced"),
    "learn": ("learn", "learns", "learning", "learned"),
    "write": ("write", "writes", "writing"),
    "plan": ("plan", "plans", "planning", "planned"),
    "review": ("review", "reviews", "reviewing", "reviewed"),
    "speak": ("speak", "speaks", "speaking"),
    "listen": ("listen", "listens", "listening", "listened"),
    "grammar": ("grammar",),
    "vocabulary": ("vocabulary",),
    "habit": ("habit", "habits"),
}
# The fixed query set: (query, the words a post must hold to be relevant).
QUERIES = (
    ("运营", ("运营",)),
    ("定位", ("定位",)),
    ("画像", ("画像",)),
    ("打卡", ("打卡",)),
    ("复盘", ("复盘",)),
    ("雅思", ("雅思",)),
    ("study", ("study",)),
    ("studying", ("study",)),
    ("reviewed", ("review",)),
    ("habits", ("habit",)),
    ("打卡 reading", ("打卡", "read")),
    ("英语 practice", ("英语", "practice")),
)
# What the load asks: a common two-character word, an English stem, mixed text.
LOAD_QUERIES = ("打卡", "studying", "打卡 reading")


@dataclass(frozen=True)
class Doc:
    title: str
    body: str
    # The vocabulary entries it holds (Chinese words, English lemmas).
    words: frozenset[str]


def corpus(rng: random.Random) -> Iterator[Doc]:
    """Posts of a few mixed sentences: Chinese words on a long tail (the first ones common,
    as "运营" and "打卡" are in a study community), English words in their inflections, and
    now and then a phrase that only looks like holding a query word."""
    weights = [1.0 / (rank + 1) for rank in range(len(CHINESE))]
    lemmas = list(ENGLISH)
    while True:
        words: set[str] = set()
        sentences = []
        for _ in range(rng.randint(2, 4)):
            parts = []
            for _ in range(rng.randint(3, 6)):
                if rng.random() < 0.03:
                    parts.append(rng.choice(TRAPS))
                elif rng.random() < 0.25:
                    lemma = rng.choice(lemmas)
                    words.add(lemma)
                    parts.append(" " + rng.choice(ENGLISH[lemma]) + " ")
                else:
                    word = rng.choices(CHINESE, weights)[0]
                    words.add(word)
                    parts.append(word)
                    if rng.random() < 0.4:
                        parts.append(rng.choice(GLUE))
            sentences.append("".join(parts).strip() + "。")
        title, body = sentences[0], "".join(sentences[1:])
        yield Doc(title, body, frozenset(words))


# ---- the analyzers compared (decision 0039) -------------------------------------------------


def _grams(size: int, *, stem: bool = False) -> Callable[[str], list[str]]:
    """Overlapping n-grams of each Chinese run, English words as they are (or stemmed): what
    a trigram or bigram tokenizer does, folded to lower case."""
    stemmer = analyzer._stemmer

    def cut(value: str) -> list[str]:
        terms: list[str] = []
        for run in analyzer._RUNS.findall(value.lower()):
            if analyzer._IS_CJK.match(run):
                if len(run) > size:
                    terms.extend(run[i : i + size] for i in range(len(run) - size + 1))
                else:
                    terms.append(run)
            else:
                terms.append(stemmer.stemWord(run) if stem else run)
        return terms

    return cut


ANALYZERS: dict[str, tuple[Callable[[str], list[str]], Callable[[str], list[str]]]] = {
    "jieba + Snowball (chosen)": (analyzer.index_terms, analyzer.query_terms),
    "CJK bigrams + Snowball": (_grams(2, stem=True), _grams(2, stem=True)),
    "CJK bigrams, words as written": (_grams(2), _grams(2)),
    "CJK trigrams, words as written": (_grams(3), _grams(3)),
}


def compare_analyzers(documents: int) -> None:
    rng = random.Random(SEED)
    docs = [doc for doc, _ in zip(corpus(rng), range(documents), strict=False)]
    analyzer.load()
    print(f"{documents:,} synthetic posts, {len(QUERIES)} queries (bench.content_search)\n")
    print(
        "| analyzer | recall | recall: Chinese / English / mixed | precision "
        "| index (FTS5, MB) | indexing (posts/s) |"
    )
    print("|---|---|---|---|---|---|")
    for name, (index, query) in ANALYZERS.items():
        connection = sqlite3.connect(":memory:")
        connection.execute(
            "CREATE VIRTUAL TABLE fts USING fts5(terms, "
            "tokenize = 'unicode61 remove_diacritics 0', detail = column)"
        )
        started = time.perf_counter()
        connection.executemany(
            "INSERT INTO fts (rowid, terms) VALUES (?, ?)",
            ((n, " ".join(index(doc.title + " " + doc.body))) for n, doc in enumerate(docs)),
        )
        connection.commit()
        rate = documents / (time.perf_counter() - started)
        size = connection.execute("SELECT sum(length(block)) FROM fts_data").fetchone()[0]
        recalls, precisions = [], []
        by_language: dict[str, list[float]] = {"zh": [], "en": [], "mixed": []}
        for asked, needs in QUERIES:
            relevant = {n for n, doc in enumerate(docs) if set(needs) <= doc.words}
            terms = query(asked)
            match = " ".join(f'"{term}"' for term in terms)
            found = (
                {row[0] for row in connection.execute(_FTS_ROWIDS, (match,))} if terms else set()
            )
            hit = len(found & relevant)
            recalls.append(hit / len(relevant) if relevant else 1.0)
            by_language[_language(asked)].append(recalls[-1])
            precisions.append(hit / len(found) if found else 0.0)
        split = " / ".join(f"{statistics.mean(values):.2f}" for values in by_language.values())
        print(
            f"| {name} | {statistics.mean(recalls):.2f} | {split} "
            f"| {statistics.mean(precisions):.2f} | {size / 1e6:.1f} | {rate:,.0f} |"
        )
        connection.close()


_FTS_ROWIDS = "SELECT rowid FROM fts WHERE fts MATCH ?"


def _language(query: str) -> str:
    chinese = bool(analyzer._IS_CJK.search(query))
    latin = any(character.isascii() and character.isalpha() for character in query)
    return "mixed" if chinese and latin else "zh" if chinese else "en"


# ---- seeding --------------------------------------------------------------------------------


def community_sizes(posts: int) -> list[int]:
    """The largest community a tenth of all posts, nine more a fiftieth each, the rest in
    communities of a thousandth."""
    largest = posts // 10
    large = [posts // 50] * 9
    rest = posts - largest - sum(large)
    small = max(1, posts // 1000)
    sizes = [largest, *large] + [small] * (rest // small)
    sizes[-1] += rest - small * (rest // small)
    return sizes


async def seed(database: Database, posts: int) -> str:
    """Seed `posts` posts unless the database holds them already; the largest community's id."""
    async with database.read() as session:
        seeded = (
            await session.execute(text("SELECT count(*) FROM posts WHERE author_user_id = 'seed'"))
        ).scalar_one()
    rng = random.Random(SEED)
    sizes = community_sizes(posts)
    communities = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in sizes]
    if seeded == posts:
        print(f"seed: {posts:,} posts already there", file=sys.stderr)
        return communities[0]
    if seeded:
        raise SystemExit(f"the database holds {seeded:,} seeded posts, not {posts:,}: remove it")
    documents = corpus(rng)
    started = time.perf_counter()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pending: list[Post] = []
    # Communities write side by side, as they do: each post goes to one drawn by its size.
    order = [index for index, size in enumerate(sizes) for _ in range(size)]
    rng.shuffle(order)
    for done, index in enumerate(order, start=1):
        community_id = communities[index]
        doc = next(documents)
        moment = start + timedelta(seconds=done - 1)
        pending.append(
            Post(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                community_id=community_id,
                author_user_id="seed",
                kind=PostKind.ARTICLE,
                title=doc.title[:200],
                body=doc.body,
                created_at=moment,
                published_at=moment,
            )
        )
        if len(pending) == BATCH:
            await _add(database, pending)
            pending = []
            if done % 50_000 == 0:
                rate = done / (time.perf_counter() - started)
                print(f"seed: {done:,} posts, {rate:,.0f}/s", file=sys.stderr)
    await _add(database, pending)
    print(f"seed: {posts:,} posts in {time.perf_counter() - started:,.0f} s", file=sys.stderr)
    return communities[0]


async def _add(database: Database, many: Sequence[Post]) -> None:
    if many:
        async with database.write() as session:
            documents = [doc for post in many for doc in documents_of(post)]
            await PostRepository(session).add_many(many, documents)


# ---- the load -------------------------------------------------------------------------------

_RAW_SQLITE = text(
    "SELECT post_id FROM search_fts WHERE search_fts MATCH :match ORDER BY rank LIMIT 21"
)
_RAW_POSTGRESQL = text(
    "SELECT post_id FROM search_documents, plainto_tsquery('simple', :terms) q "
    "WHERE terms_vector @@ q ORDER BY ts_rank(terms_vector, q) DESC LIMIT 21"
)


def _asks(database: Database, community_id: str) -> dict[str, Callable[[str], Awaitable[Any]]]:
    sqlite = database.is_sqlite

    async def raw(query: str) -> Any:
        every = [analyzer.community_term(community_id), *analyzer.query_terms(query)]
        async with database.read() as session:
            if sqlite:
                match = " ".join(f'"{term}"' for term in every)
                return (await session.execute(_RAW_SQLITE, {"match": match})).all()
            return (await session.execute(_RAW_POSTGRESQL, {"terms": " ".join(every)})).all()

    async def feed(_: str) -> Any:
        async with database.read() as session:
            return await PostRepository(session).newest(community_id, None, None, 21)

    async def search_only(query: str) -> Any:
        async with database.read() as session:
            return await search(session, community_id, analyzer.query_terms(query), 0, 21)

    return {"search (SearchPosts' query)": search_only, "raw FTS5 / tsquery": raw, "feed": feed}


async def measure(
    ask: Callable[[str], Awaitable[Any]], query: str, concurrency: int, seconds: float
) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await ask(query)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies


def _p(latencies: list[float], share: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def run_search(args: argparse.Namespace) -> None:
    analyzer.load()
    CACHE.mkdir(exist_ok=True)
    if args.store == "sqlite":
        url = f"sqlite+aiosqlite:///{CACHE / f'content-search-{args.posts}.db'}"
    else:
        base = args.postgres_url or os.environ.get("STUDYHALL_TEST_POSTGRES_URL", "")
        if not base:
            raise SystemExit("--store postgresql needs --postgres-url (a server that keeps data)")
        url = await _postgres_database(base, f"bench_content_search_{args.posts}")
    database = Database(url)
    try:
        await migrate(database, MIGRATIONS, service="content")
        community_id = await seed(database, args.posts)
        # Statistics as autovacuum would leave them after a bulk load: without them the
        # planner takes the community's posts for one row.
        async with database.write() as session:
            await session.execute(text("ANALYZE"))
        asks = _asks(database, community_id)
        print(machine_facts(None), file=sys.stderr)
        print(
            f"\n{args.store}, {args.posts:,} posts (largest community {args.posts // 10:,}), "
            f"{args.concurrency} concurrent callers, {args.seconds:g} s each\n"
        )
        print("| what | query | calls/s | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for query in LOAD_QUERIES:
            for name in ("search (SearchPosts' query)", "raw FTS5 / tsquery"):
                latencies = await measure(asks[name], query, args.concurrency, args.seconds)
                print(
                    f"| {name} | {query} | {len(latencies) / args.seconds:,.0f} "
                    f"| {_p(latencies, 0.5):.1f} | {_p(latencies, 0.99):.1f} |"
                )
        latencies = await measure(asks["feed"], "", args.concurrency, args.seconds)
        print(
            f"| feed (newest, 20) | | {len(latencies) / args.seconds:,.0f} "
            f"| {_p(latencies, 0.5):.1f} | {_p(latencies, 0.99):.1f} |"
        )
    finally:
        await database.close()


async def _postgres_database(base: str, name: str) -> str:
    """A database of its own on the server at `base`, created once and kept."""
    admin = Database(_asyncpg(base))
    try:
        async with admin.writer.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            exists = await autocommit.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.close()
    return _asyncpg(base.rsplit("/", 1)[0] + "/" + name)


def _asyncpg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--analyzers", action="store_true", help="compare the analyzers")
    parser.add_argument("--documents", type=int, default=20_000, help="posts for --analyzers")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default="")
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.analyzers:
        compare_analyzers(args.documents)
    else:
        asyncio.run(run_search(args))


if __name__ == "__main__":
    main()
