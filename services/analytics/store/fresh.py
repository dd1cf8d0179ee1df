"""A fresh store written in bulk: a whole history's effects merged in memory by the rollups'
own rules (rollups.py), then each table written once (docs/decisions/0034).

Nobody else writes a store being rebuilt, so nothing needs an upsert: the rows that live
batches merge into the database one INSERT ... ON CONFLICT at a time are merged here, in
the order the history holds them, and reach the store in one COPY per table. Erasure is
resolved here as well: a member with a tombstone (copied from the live store first) is
renamed before their effects are merged, and one whose tombstone the history draws is
renamed in what was merged before, as erase_member renames stored rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from services.analytics.facts import Effects, Key
from services.analytics.store.rollups import (
    COMMUNITIES,
    NAMED,
    ROLLUPS,
    Rollup,
    digest,
    new_pseudonym,
)
from services.analytics.store.sweeps import add_sweeps, next_sweep, sweep_job
from services.analytics.store.tables import tombstones
from services.kit.database import insert_all

Row = dict[str, Any]


class Totals:
    """Every rollup's rows, merged across batches as the live upserts would merge them."""

    def __init__(self, known: Iterable[Mapping[str, Any]] = ()) -> None:
        self._tables: dict[Table, dict[tuple[Any, ...], Row]] = {}
        # (community, digest) -> pseudonym: the tombstones the store holds already.
        self._pseudonyms = {
            (row["community_id"], row["user_digest"]): row["pseudonym"] for row in known
        }
        self.tombstones: list[Row] = []  # the ones the history drew: still to be written
        # The rollup a renamed row merges by, where the member is part of the key.
        self._by_user_key = {
            rollup.table: rollup
            for rollup in ROLLUPS
            for table, column in NAMED
            if rollup.table is table and column in rollup.keys
        }

    def add(self, effects: Effects) -> None:
        """A batch's effects, in the order the history holds the batches (rollups.write)."""
        self._merge(COMMUNITIES, COMMUNITIES.rows(effects))
        if self._pseudonyms:
            effects.rename(self._known(effects.users()))
        for community_id, user_id in effects.erased:
            self._erase(community_id, user_id, effects)
        for rollup in ROLLUPS:
            self._merge(rollup, rollup.rows(effects))

    def tables(self) -> list[tuple[Table, list[Row]]]:
        """Each table's rows, every column named (what a row never set takes the column's
        default)."""
        written = []
        for table, merged in self._tables.items():
            defaults = {
                column.name: column.default.arg
                if isinstance(column.default, ScalarElementColumnDefault)
                else None
                for column in table.columns
            }
            rows = [
                row if len(row) == len(defaults) else {**defaults, **row} for row in merged.values()
            ]
            written.append((table, rows))
        return written

    @property
    def communities(self) -> list[str]:
        return sorted(key[0] for key in self._tables.get(COMMUNITIES.table, {}))

    @property
    def rows(self) -> int:
        return sum(map(len, self._tables.values()))

    def _merge(self, rollup: Rollup, rows: Iterable[Row]) -> None:
        merged = self._tables.setdefault(rollup.table, {})
        keys = rollup.keys
        for row in rows:
            key = tuple(row[name] for name in keys)
            old = merged.get(key)
            if old is None:
                merged[key] = row
            else:
                rollup.merge(old, row)

    def _known(self, users: set[Key]) -> dict[Key, str]:
        found = {}
        for community_id, user_id in users:
            pseudonym = self._pseudonyms.get((community_id, digest(community_id, user_id)))
            if pseudonym is not None:
                found[(community_id, user_id)] = pseudonym
        return found

    def _erase(self, community_id: str, user_id: str, effects: Effects) -> None:
        """A member with a tombstone has been renamed on the way in, before and after it was
        drawn; one without gets it now, and what names them already is renamed."""
        key = (community_id, digest(community_id, user_id))
        if key in self._pseudonyms:
            return
        pseudonym = self._pseudonyms[key] = new_pseudonym()
        self.tombstones.append(
            {"community_id": community_id, "user_digest": key[1], "pseudonym": pseudonym}
        )
        effects.rename({(community_id, user_id): pseudonym})
        for table, column in NAMED:
            merged = self._tables.get(table)
            if not merged:
                continue
            named = [
                (old_key, row)
                for old_key, row in merged.items()
                if row["community_id"] == community_id and row[column] == user_id
            ]
            rollup = self._by_user_key.get(table)
            for old_key, row in named:
                row[column] = pseudonym
                if rollup is None:
                    continue
                del merged[old_key]
                new_key = tuple(row[name] for name in rollup.keys)
                if new_key in merged:
                    rollup.merge(merged[new_key], row)
                else:
                    merged[new_key] = row


async def write(session: AsyncSession, totals: Totals) -> None:
    """Every merged row into the fresh store, one bulk insert per table, and the churn
    sweep of each community the history reached."""
    await insert_all(session, tombstones, totals.tombstones)
    for table, rows in totals.tables():
        await insert_all(session, table, rows)
    now = datetime.now(UTC)
    due = next_sweep(now)
    await add_sweeps(session, [sweep_job(c, due, now) for c in totals.communities])
