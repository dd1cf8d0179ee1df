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
from services.content.text import community_term


@dataclass(frozen=True)
class Match:
    post_id: str
    # Where the best match was: "post", "body" or "comment".
    kind: str


# The newest matching documents are ranked, this many at most: a word that half of a large
# community's posts hold costs a bounded ranking, not one per match (docs/decisions/0039).
WINDOW = 1_000

# A reader's best document per post, best first; bm25 is lower for a better match. FTS5
# walks the matches newest first (by rowid) and stops at the window.
_SQLITE = text(
    """
    WITH found AS (
        SELECT post_id, kind, bm25(search_fts) AS score
        FROM search_fts WHERE search_fts MATCH :match
        ORDER BY rowid DESC LIMIT :window
    ),
    allowed AS (
        SELECT found.post_id, found.kind, found.score,
               row_number() OVER (
                   PARTITION BY found.post_id ORDER BY found.score, found.kind
               ) AS best
        FROM found JOIN posts ON posts.id = found.post_id
        WHERE posts.community_id = :community_id AND posts.state = :published
          AND NOT (found.kind = :body AND EXISTS (
              SELECT 1 FROM paid_posts WHERE paid_posts.post_id = found.post_id))
    )
    SELECT post_id, kind FROM allowed WHERE best = 1
    ORDER BY score, post_id LIMIT :limit OFFSET :offset
    """
)

_POSTGRESQL = text(
    """
    WITH query AS (SELECT plainto_tsquery('simple', :terms) AS q),
    found AS (
        SELECT d.post_id, d.kind, d.terms
        FROM search_documents d, query
        WHERE to_tsvector('simple'::regconfig, d.terms) @@ query.q
        ORDER BY d.id DESC LIMIT :window
    ),
    allowed AS (
        SELECT found.post_id, found.kind, ranked.score,
               row_number() OVER (
                   PARTITION BY found.post_id ORDER BY ranked.score DESC, found.kind
               ) AS best
        FROM found
        CROSS JOIN query
        CROSS JOIN LATERAL (
            SELECT ts_rank(to_tsvector('simple'::regconfig, found.terms), query.q) AS score
        ) AS ranked
        JOIN posts ON posts.id = found.post_id
        WHERE posts.community_id = :community_id AND posts.state = :published
          AND NOT (found.kind = :body AND EXISTS (
              SELECT 1 FROM paid_posts WHERE paid_posts.post_id = found.post_id))
    )
    SELECT post_id, kind FROM allowed WHERE best = 1
    ORDER BY score DESC, post_id LIMIT :limit OFFSET :offset
    """
)


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
        statement, params["terms"] = _POSTGRESQL, " ".join(every)
    rows = await session.execute(statement, params)
    return [Match(row.post_id, row.kind) for row in rows]
