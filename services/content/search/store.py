"""Search queries: FTS5 on SQLite, a `simple` tsvector on PostgreSQL, over the same terms.

Both keep the search inside the community through the community's own term (the index
merges two lists instead of filtering a whole language's matches afterwards), then drop what
the reader must not find: posts not published (drafts, deleted) and a paid post's body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.content.posts.domain import PostState
from services.content.store.search_index import BODY
from services.content.text import BLOCK_BITS, block_term, community_term


@dataclass(frozen=True)
class Match:
    post_id: str
    # Where the best match was: "post", "body" or "comment".
    kind: str


# The newest matching documents are ranked, this many at most: a word that half of a large
# community's posts hold costs a bounded ranking, not one per match (docs/decisions/0039).
WINDOW = 1_000

# Best first: the words in a post's title, summary or tags, then in its body, then in one
# of its comments; newest first within each. (bm25 or ts_rank over the window cost ten times
# the query itself: decision 0039.)
_RANK = "CASE found.kind WHEN 'post' THEN 0 WHEN 'body' THEN 1 ELSE 2 END"

# FTS5 walks the matches newest first (by rowid, the document's id) and stops at the window.
_SQLITE = text(
    f"""
    WITH found AS (
        SELECT rowid AS id, post_id, kind
        FROM search_fts WHERE search_fts MATCH :match
        ORDER BY rowid DESC LIMIT :window
    ),
    allowed AS (
        SELECT found.post_id, found.kind, found.id, {_RANK} AS rank,
               row_number() OVER (
                   PARTITION BY found.post_id ORDER BY {_RANK}, found.id DESC
               ) AS best
        FROM found JOIN posts ON posts.id = found.post_id
        WHERE posts.community_id = :community_id AND posts.state = :published
          AND NOT (found.kind = :body AND EXISTS (
              SELECT 1 FROM paid_posts WHERE paid_posts.post_id = found.post_id))
    )
    SELECT post_id, kind FROM allowed WHERE best = 1
    ORDER BY rank, id DESC LIMIT :limit OFFSET :offset
    """
)

# PostgreSQL asks in stages, each a wider reach of the community's documents: its newest 2
# blocks, then its newest 8, then all of it (the community's term). A stage runs only when
# every earlier one found fewer matches than the window (a one-time filter), and the first
# that fills the window gives it: ids grow with time, so its newest matches are the
# community's. A common word in a large community costs a couple of blocks' matches, a rare
# one the stages' short lists; the worst, a word that just misses each stage, reads a few
# windows' worth instead of tens of thousands of matches (docs/decisions/0039).
# MATERIALIZED: walking the primary key newest first instead would test every document.
STAGES = (2, 8)  # blocks of the stages before the whole community


def _staged() -> str:
    names = [f"stage{n}" for n in range(len(STAGES) + 1)]
    ctes = []
    for n, name in enumerate(names):
        earlier = "".join(f" AND (SELECT count(*) FROM {before}) < :window" for before in names[:n])
        ctes.append(
            f"""{name} AS MATERIALIZED (
        SELECT d.id, d.post_id, d.kind FROM search_documents d
        WHERE d.terms_vector @@ to_tsquery('simple', :{name}){earlier}
        ORDER BY d.id DESC LIMIT :window
    )"""
        )
    found = "\n        UNION ALL\n        ".join(
        f"SELECT * FROM {name} WHERE (SELECT count(*) FROM {name}) >= :window"
        for name in names[:-1]
    )
    ctes.append(
        f"found AS (\n        {found}\n        UNION ALL\n        SELECT * FROM {names[-1]}\n    )"
    )
    return ",\n    ".join(ctes)


_POSTGRESQL = text(
    f"""
    WITH {_staged()},
    allowed AS (
        SELECT found.post_id, found.kind, found.id, {_RANK} AS rank,
               row_number() OVER (
                   PARTITION BY found.post_id ORDER BY {_RANK}, found.id DESC
               ) AS best
        FROM found JOIN posts ON posts.id = found.post_id
        WHERE posts.community_id = :community_id AND posts.state = :published
          AND NOT (found.kind = :body AND EXISTS (
              SELECT 1 FROM paid_posts WHERE paid_posts.post_id = found.post_id))
    )
    SELECT post_id, kind FROM allowed WHERE best = 1
    ORDER BY rank, id DESC LIMIT :limit OFFSET :offset
    """
)
_NEWEST = text("SELECT max(id) FROM search_documents")


async def search(
    session: AsyncSession, community_id: str, terms: list[str], offset: int, limit: int
) -> list[Match]:
    """The posts of a community matching every one of `terms`, best first."""
    every = [community_term(community_id), *terms]
    params: dict[str, Any] = {
        "community_id": community_id,
        "published": int(PostState.PUBLISHED),
        "body": BODY,
        "limit": limit,
        "offset": offset,
        "window": WINDOW,
    }
    if session.get_bind().dialect.name == "sqlite":
        # Terms hold only letters and digits (the analyzer's), quoted as FTS5 strings.
        statement, params["match"] = _SQLITE, " ".join(f'"{term}"' for term in every)
    else:
        newest = (await session.execute(_NEWEST)).scalar() or 0
        last = newest >> BLOCK_BITS
        # Terms hold only letters and digits: nothing in them is tsquery syntax.
        words = "".join(f" & {term}" for term in terms)
        for n, blocks in enumerate(STAGES):
            reach = range(last, max(last - blocks, -1), -1)
            either = " | ".join(block_term(community_id, block) for block in reach)
            params[f"stage{n}"] = f"({either}){words}"
        params[f"stage{len(STAGES)}"] = community_term(community_id) + words
        statement = _POSTGRESQL
    rows = await session.execute(statement, params)
    return [Match(row.post_id, row.kind) for row in rows]
