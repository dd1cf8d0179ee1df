"""Writing a batch's effects (services/analytics/facts.py) into the rollups: one statement
per table the batch touches, each an INSERT ... ON CONFLICT whose update commutes. How each
table's rows merge is declared once (`Rollup`), for these upserts and for a rebuild's
merge in memory."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, case, delete, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.analytics.facts import DEEDS, FIRSTS, Effects, Key
from services.analytics.store.sweeps import ensure_sweeps
from services.analytics.store.tables import (
    activities,
    churn_risks,
    community_stats,
    community_topics,
    daily_counts,
    feedback,
    hourly_counts,
    member_days,
    member_firsts,
    member_states,
    mrr_days,
    post_days,
    posts,
    registrations,
    subscriptions,
    survey_answers,
    survey_recipients,
    tombstones,
)
from services.kit.database import insert_for
from services.kit.projection import upsert_newer, upsert_only

_STATEMENTS: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def digest(community_id: str, user_id: str) -> str:
    """How a tombstone names an erased member without keeping their id."""
    return hashlib.sha256(f"{community_id}\x00{user_id}".encode()).hexdigest()


def new_pseudonym() -> str:
    """What an erased member's rows are named from now on: drawn at random, so nothing
    links them to the person."""
    return f"erased-{uuid.uuid4().hex}"


async def write(session: AsyncSession, effects: Effects) -> None:
    # The communities' rows first, in one order: their row locks serialize this batch with
    # an erasure in the same community (erase() takes the same lock), so the tombstones
    # read next are the ones committed before, and no row escapes the erasure.
    await lock_communities(session, COMMUNITIES.rows(effects))
    effects.rename(await pseudonyms(session, effects.users()))
    for community_id, user_id in effects.erased:
        await erase_member(session, community_id, user_id)
    if effects.erased:
        # Facts of the same batch about a member it erases (before the erasure or after)
        # land on the pseudonym too: her tombstone may be the one just drawn.
        effects.rename(await pseudonyms(session, set(effects.erased)))
    for rollup in ROLLUPS:
        await rollup.upsert(session, rollup.rows(effects))
    # Every community an event reaches is swept for churn risk once a day.
    await ensure_sweeps(session, sorted(effects.touched))


@dataclass(frozen=True)
class Rollup:
    """One table's rows from a batch's effects, and how a row merges with the stored row of
    the same `keys`: `add` columns add up, `least` (`greatest`) keep the least (greatest)
    non-null value; with `newer` (a version column) a newer row replaces the stored one
    whole; with none of these, the columns a row carries replace the stored ones.

    Live batches upsert by these rules; a rebuild merges a whole history by the same rules
    in memory (services/analytics/store/fresh.py) and writes each table once, so the two
    cannot disagree on how effects add up."""

    table: Table
    keys: tuple[str, ...]
    rows: Callable[[Effects], list[dict[str, Any]]]
    add: tuple[str, ...] = ()
    least: tuple[str, ...] = ()
    greatest: tuple[str, ...] = ()
    newer: str | None = None

    async def upsert(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if self.newer is not None:
            await upsert_newer(session, self.table, rows, self.keys, version=self.newer)
        elif self.add or self.least or self.greatest:
            await _merge(
                session,
                self.table,
                rows,
                self.keys,
                add=self.add,
                least=self.least,
                greatest=self.greatest,
            )
        else:
            columns = [name for name in rows[0] if name not in self.keys]
            await upsert_only(session, self.table, rows, self.keys, columns)

    def merge(self, old: dict[str, Any], new: Mapping[str, Any]) -> None:
        """`new` into `old` (a row of the same keys) as `upsert` writes it over a stored
        row."""
        if self.newer is not None:
            if new[self.newer] > old[self.newer]:
                old.update(new)
            return
        for name, value in new.items():
            if name in self.add:
                old[name] += value
            elif name in self.least:
                if value is not None and (old.get(name) is None or value < old[name]):
                    old[name] = value
            elif name in self.greatest:
                if value is not None and (old.get(name) is None or value > old[name]):
                    old[name] = value
            elif name not in self.keys:
                old[name] = value


def _communities(fx: Effects) -> list[dict[str, Any]]:
    return [
        {"community_id": c, "updated_at": at, "archived_at": fx.archived.get(c)}
        for c, at in sorted(fx.touched.items())
    ]


def _daily(fx: Effects) -> list[dict[str, Any]]:
    return [
        {"community_id": c, "day": d, "measure": m, "value": v}
        for (c, d, m), v in fx.counts.items()
    ]


def _hourly(fx: Effects) -> list[dict[str, Any]]:
    return [
        {"community_id": c, "hour": h, "measure": m, "value": v}
        for (c, h, m), v in fx.hours.items()
    ]


def _member_days(fx: Effects) -> list[dict[str, Any]]:
    none: Counter[str] = Counter()
    rows = []
    for key in set(fx.deeds) | set(fx.streaks):
        deeds = fx.deeds.get(key, none)
        row = {"community_id": key[0], "day": key[1], "user_id": key[2]}
        for deed in DEEDS:
            row[deed] = deeds[deed]
        row["streak"] = fx.streaks.get(key, 0)
        rows.append(row)
    return rows


def _member_firsts(fx: Effects) -> list[dict[str, Any]]:
    return [
        {"community_id": c, "user_id": u, **{step: steps.get(step) for step in FIRSTS}}
        for (c, u), steps in fx.firsts.items()
    ]


def _described_posts(fx: Effects) -> list[dict[str, Any]]:
    return list(fx.posts.values())


def _answers(fx: Effects) -> list[dict[str, Any]]:
    return [
        {"community_id": c, "post_id": p, "first_answer_at": at}
        for (c, p), at in fx.answers.items()
    ]


def _post_days(fx: Effects) -> list[dict[str, Any]]:
    return [
        {
            "community_id": c,
            "day": d,
            "post_id": p,
            "views": n["views"],
            "comments": n["comments"],
            "reactions": n["reactions"],
        }
        for (c, d, p), n in fx.post_days.items()
    ]


def _mrr(fx: Effects) -> list[dict[str, Any]]:
    return [
        {"community_id": c, "day": d, "currency": cur, "kind": k, "amount_minor": a, "moves": n}
        for (c, d, cur, k), (a, n) in fx.mrr.items()
    ]


# community_stats: written first, alone (see write()).
COMMUNITIES = Rollup(
    community_stats,
    ("community_id",),
    _communities,
    greatest=("updated_at",),
    least=("archived_at",),
)
# The rest, in the order a batch writes them.
ROLLUPS: tuple[Rollup, ...] = (
    Rollup(daily_counts, ("community_id", "day", "measure"), _daily, add=("value",)),
    Rollup(hourly_counts, ("community_id", "hour", "measure"), _hourly, add=("value",)),
    Rollup(
        member_days,
        ("community_id", "day", "user_id"),
        _member_days,
        add=DEEDS,
        greatest=("streak",),
    ),
    Rollup(member_firsts, ("community_id", "user_id"), _member_firsts, least=FIRSTS),
    Rollup(member_states, ("community_id", "user_id"), lambda fx: fx.states, newer="version"),
    # What PostCreated says of a post; a row an answer made first keeps its answer time.
    Rollup(posts, ("community_id", "post_id"), _described_posts),
    Rollup(posts, ("community_id", "post_id"), _answers, least=("first_answer_at",)),
    Rollup(
        post_days,
        ("community_id", "day", "post_id"),
        _post_days,
        add=("views", "comments", "reactions"),
    ),
    Rollup(activities, ("community_id", "activity_id"), lambda fx: fx.activities, newer="version"),
    Rollup(
        registrations,
        ("community_id", "registration_id"),
        lambda fx: fx.registrations,
        newer="version",
    ),
    Rollup(
        subscriptions,
        ("community_id", "subscription_id"),
        lambda fx: fx.subscriptions,
        newer="version",
    ),
    Rollup(
        mrr_days,
        ("community_id", "day", "currency", "kind"),
        _mrr,
        add=("amount_minor", "moves"),
    ),
    Rollup(feedback, ("community_id", "feedback_id"), lambda fx: fx.feedback, newer="version"),
    Rollup(community_topics, ("community_id",), lambda fx: fx.topics, newer="version"),
)


async def lock_communities(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Note the communities' latest event and archive time (rows sorted by community)."""
    await COMMUNITIES.upsert(session, rows)


async def erase_member(session: AsyncSession, community_id: str, user_id: str) -> None:
    """Rename the member's rows to their pseudonym (drawn once, kept in the tombstone)."""
    # The same lock a batch takes first (write() above).
    await lock_communities(
        session, [{"community_id": community_id, "updated_at": None, "archived_at": None}]
    )
    key = digest(community_id, user_id)
    pseudonym = await session.scalar(
        select(tombstones.c.pseudonym).where(
            tombstones.c.community_id == community_id, tombstones.c.user_digest == key
        )
    )
    if pseudonym is None:
        pseudonym = new_pseudonym()
        await session.execute(
            tombstones.insert().values(
                community_id=community_id, user_digest=key, pseudonym=pseudonym
            )
        )
    await _forget_free_text(session, community_id, user_id)
    for table, column in NAMED:
        await session.execute(
            update(table)
            .where(table.c.community_id == community_id, table.c[column] == user_id)
            .values({column: pseudonym})
        )
    # Snapshots and judgements name the person and are no figure: they go.
    for table in (survey_recipients, churn_risks):
        await session.execute(
            delete(table).where(table.c.community_id == community_id, table.c.user_id == user_id)
        )


async def _forget_free_text(session: AsyncSession, community_id: str, user_id: str) -> None:
    """Survey answers keep their scores and choices; the words the member wrote go."""
    rows = await session.execute(
        select(survey_answers.c.survey_id, survey_answers.c.answers).where(
            survey_answers.c.community_id == community_id, survey_answers.c.user_id == user_id
        )
    )
    for survey_id, text in rows.all():
        answers = json.loads(text)
        for answer in answers.values():
            answer.pop("text", None)
        await session.execute(
            update(survey_answers)
            .where(
                survey_answers.c.community_id == community_id,
                survey_answers.c.survey_id == survey_id,
                survey_answers.c.user_id == user_id,
            )
            .values(answers=json.dumps(answers, sort_keys=True))
        )


# Every table that names a member, and the column that does.
NAMED: tuple[tuple[Table, str], ...] = (
    (member_states, "user_id"),
    (member_days, "user_id"),
    (member_firsts, "user_id"),
    (posts, "author_user_id"),
    (registrations, "user_id"),
    (subscriptions, "user_id"),
    (feedback, "user_id"),
    (survey_answers, "user_id"),
)


async def pseudonyms(session: AsyncSession, users: set[Key]) -> dict[Key, str]:
    """The pseudonyms of those of `users` who were erased."""
    if not users:
        return {}
    by_digest = {(c, digest(c, u)): (c, u) for c, u in users}
    found: dict[Key, str] = {}
    keys = list(by_digest)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = await session.execute(
            select(
                tombstones.c.community_id, tombstones.c.user_digest, tombstones.c.pseudonym
            ).where(tuple_(tombstones.c.community_id, tombstones.c.user_digest).in_(chunk))
        )
        for row in rows:
            found[by_digest[(row.community_id, row.user_digest)]] = row.pseudonym
    return found


async def _merge(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: tuple[str, ...],
    *,
    add: Sequence[str] = (),
    least: Sequence[str] = (),
    greatest: Sequence[str] = (),
) -> None:
    """Insert `rows`; where a row exists, add to `add` columns and keep the least (greatest)
    non-null value of `least` (`greatest`) columns."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    cache_key = (dialect, table.name, tuple(rows[0]))
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        insert: Any = insert_for(dialect)
        base = insert(table)
        new = base.excluded
        updates: dict[str, ColumnElement[Any]] = {}
        for name in add:
            updates[name] = table.c[name] + new[name]
        for name in least:
            updates[name] = _pick(table.c[name], new[name], new[name] < table.c[name])
        for name in greatest:
            updates[name] = _pick(table.c[name], new[name], new[name] > table.c[name])
        statement = base.on_conflict_do_update(index_elements=list(keys), set_=updates)
        _STATEMENTS[cache_key] = statement
    await session.execute(statement, list(rows))


def _pick(
    old: ColumnElement[Any], new: ColumnElement[Any], new_wins: ColumnElement[bool]
) -> ColumnElement[Any]:
    """`new` where the old value is null or `new_wins`, else the old value (nulls lose)."""
    return case(
        (or_(old.is_(None), and_(new.is_not(None), new_wins)), new),
        else_=old,
    )
