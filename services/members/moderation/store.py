"""Reports and their decisions, and the posts a report may be about, as stored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.kit.database import utc
from services.kit.projection import upsert_newer
from services.kit.versioned import update_versioned
from services.members.moderation.reports import Decision, Reason, Report, Resolution, State
from services.members.store.tables import known_posts, reports


@dataclass(frozen=True)
class KnownPost:
    """A post as content's facts describe it."""

    community_id: str
    post_id: str
    # "" once the author's data was erased: the post stays the community's, under no author.
    author_user_id: str
    version: int


class PostRepository:
    """The posts content told of (PostCreated), by community."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, posts: Sequence[KnownPost]) -> None:
        """Store posts, each replacing only an older version of itself."""
        await upsert_newer(
            self.session,
            known_posts,
            [
                {
                    "community_id": post.community_id,
                    "post_id": post.post_id,
                    "author_user_id": post.author_user_id,
                    "version": post.version,
                }
                for post in posts
            ],
            ["community_id", "post_id"],
        )

    async def get(self, community_id: str, post_id: str) -> KnownPost | None:
        row = (
            await self.session.execute(
                select(known_posts).where(
                    known_posts.c.community_id == community_id, known_posts.c.post_id == post_id
                )
            )
        ).first()
        if row is None:
            return None
        return KnownPost(row.community_id, row.post_id, row.author_user_id, int(row.version))

    async def written_by(self, community_id: str, user_id: str) -> list[str]:
        """Ids of the posts known as `user_id`'s, in id order."""
        rows = await self.session.scalars(
            select(known_posts.c.post_id)
            .where(
                known_posts.c.community_id == community_id,
                known_posts.c.author_user_id == user_id,
            )
            .order_by(known_posts.c.post_id)
        )
        return list(rows)

    async def forget_author(self, community_id: str, user_id: str) -> None:
        """The author's posts stay known, under no author; their versions stay, so a late
        PostCreated does not bring the author back."""
        await self.session.execute(
            known_posts.update()
            .where(
                known_posts.c.community_id == community_id,
                known_posts.c.author_user_id == user_id,
            )
            .values(author_user_id="")
        )


class ReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, report: Report) -> None:
        await self.session.execute(reports.insert().values(**_report_row(report)))

    async def save(self, report: Report) -> None:
        """Store a decided or appealed report; StaleWrite when it changed since it was read
        (two moderators deciding one report at once: one decision stands)."""
        await update_versioned(self.session, reports, _report_row(report), ["community_id", "id"])

    async def get(self, community_id: str, report_id: str) -> Report | None:
        row = (
            await self.session.execute(
                select(reports).where(
                    reports.c.community_id == community_id, reports.c.id == report_id
                )
            )
        ).first()
        return _report(row) if row else None

    async def open_exists(self, report: Report) -> bool:
        found = await self.session.scalar(
            select(reports.c.id).where(
                reports.c.community_id == report.community_id,
                reports.c.open_key == report.open_key,
            )
        )
        return found is not None

    async def listing(
        self,
        community_id: str,
        *,
        state: State | None,
        reporter: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Report]:
        """Reports oldest first (the queue order), after the `after` position."""
        query = select(reports).where(reports.c.community_id == community_id)
        if state is not None:
            query = query.where(reports.c.state == int(state))
        if reporter is not None:
            query = query.where(reports.c.reporter_user_id == reporter)
        if after is not None:
            query = query.where(tuple_(reports.c.created_at, reports.c.id) > tuple_(*after))
        query = query.order_by(reports.c.created_at, reports.c.id).limit(limit)
        return [_report(row) for row in (await self.session.execute(query)).all()]

    async def filed_by(self, community_id: str, user_id: str) -> list[Report]:
        return await self._where(community_id, reports.c.reporter_user_id == user_id)

    async def about(self, community_id: str, user_id: str) -> list[Report]:
        return await self._where(community_id, reports.c.target_user_id == user_id)

    async def _where(self, community_id: str, condition: Any) -> list[Report]:
        query = (
            select(reports)
            .where(reports.c.community_id == community_id, condition)
            .order_by(reports.c.created_at, reports.c.id)
        )
        return [_report(row) for row in (await self.session.execute(query)).all()]

    async def redact_writing_of(self, community_id: str, user_id: str) -> None:
        """Drop the free text `user_id` wrote: report details and evidence, appeal statements."""
        await self.session.execute(
            reports.update()
            .where(reports.c.community_id == community_id, reports.c.reporter_user_id == user_id)
            .values(details="", evidence=[])
        )
        await self.session.execute(
            reports.update()
            .where(reports.c.community_id == community_id, reports.c.target_user_id == user_id)
            .values(appeal_statement="")
        )


def _report_row(report: Report) -> dict[str, object]:
    first, second = report.decision, report.appeal_decision
    return {
        "id": report.id,
        "community_id": report.community_id,
        "reporter_user_id": report.reporter_user_id,
        "target_user_id": report.target_user_id,
        "target_service": report.target_service,
        "target_kind": report.target_kind,
        "target_id": report.target_id,
        "reason": int(report.reason),
        "details": report.details,
        "evidence": report.evidence,
        "state": int(report.state),
        "version": report.version,
        "created_at": report.created_at,
        "open_key": report.open_key,
        "resolution": int(first.resolution) if first else 0,
        "resolver_user_id": first.resolver_user_id if first else "",
        "resolver_role": report.resolver_role,
        "note": first.note if first else "",
        "until": first.until if first else None,
        "resolved_at": first.decided_at if first else None,
        "remove_content": first.remove_content if first else False,
        "appeal_statement": report.appeal_statement,
        "appealed_at": report.appealed_at,
        "appeal_resolution": int(second.resolution) if second else 0,
        "appeal_resolver_user_id": second.resolver_user_id if second else "",
        "appeal_note": second.note if second else "",
        "appeal_resolved_at": second.decided_at if second else None,
    }


def _report(row: Row[Any]) -> Report:
    first = (
        Decision(
            Resolution(row.resolution),
            row.resolver_user_id,
            row.note,
            utc(row.until) if row.until else None,
            utc(row.resolved_at),
            bool(row.remove_content),
        )
        if row.resolution
        else None
    )
    second = (
        Decision(
            Resolution(row.appeal_resolution),
            row.appeal_resolver_user_id,
            row.appeal_note,
            None,
            utc(row.appeal_resolved_at),
        )
        if row.appeal_resolution
        else None
    )
    return Report(
        id=row.id,
        community_id=row.community_id,
        reporter_user_id=row.reporter_user_id,
        target_user_id=row.target_user_id,
        target_service=row.target_service,
        target_kind=row.target_kind,
        target_id=row.target_id,
        reason=Reason(row.reason),
        details=row.details,
        evidence=list(row.evidence),
        state=State(row.state),
        created_at=utc(row.created_at),
        version=row.version,
        decision=first,
        resolver_role=row.resolver_role,
        appeal_statement=row.appeal_statement,
        appealed_at=utc(row.appealed_at) if row.appealed_at else None,
        appeal_decision=second,
    )
