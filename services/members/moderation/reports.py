"""Reports and disputes: rules only, no I/O.

A report names a member or a piece of content (and, when known, its author: the member a
decision acts on). A moderator decides it; the member acted on may appeal once, and the
appeal goes to someone who outranks the first resolver.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import IntEnum

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.members.communities.domain import Membership, Role


class Reason(IntEnum):
    SPAM = 1
    HARASSMENT = 2
    OFF_TOPIC = 3
    MISINFORMATION = 4
    OTHER = 5


class State(IntEnum):
    OPEN = 1
    RESOLVED = 2
    APPEALED = 3


class Resolution(IntEnum):
    DISMISS = 1
    WARN = 2
    MUTE = 3
    BAN = 4
    UPHOLD = 5
    OVERTURN = 6


FIRST_DECISIONS = (Resolution.DISMISS, Resolution.WARN, Resolution.MUTE, Resolution.BAN)
APPEAL_DECISIONS = (Resolution.UPHOLD, Resolution.OVERTURN)
# Decisions that act on a member, and so need one and may be appealed.
ACTING = (Resolution.WARN, Resolution.MUTE, Resolution.BAN)

CONTENT_SERVICES = ("content", "events")
# What can be reported as content: what members learns from facts (content's PostCreated),
# so that the community and the author are known, not taken from the reporter. Comments and
# activities join as their facts reach members.
REPORTABLE = {("content", "post")}
KIND_PATTERN = re.compile(r"[a-z][a-z_]{0,39}")
# "content:post:<uuid>": evidence that points at something inside the platform.
CONTENT_REFERENCE = re.compile(r"(content|events):[a-z][a-z_]{0,39}:[0-9a-f-]{36}")
MAX_EVIDENCE = 10
MAX_EVIDENCE_LENGTH = 500
MAX_TEXT = 2000


@dataclass(frozen=True)
class Decision:
    resolution: Resolution
    resolver_user_id: str
    note: str
    until: datetime | None
    decided_at: datetime
    # A first decision about content may remove it as well (content acts on the fact).
    remove_content: bool = False


@dataclass(frozen=True)
class Report:
    id: str
    community_id: str
    reporter_user_id: str
    # The member reported, or the author of the content reported ("" when unknown).
    target_user_id: str
    reason: Reason
    details: str
    evidence: list[str]
    state: State
    created_at: datetime
    target_service: str = ""
    target_kind: str = ""
    target_id: str = ""
    version: int = 1
    decision: Decision | None = None
    # The first resolver's role when deciding: an appeal needs someone above it.
    resolver_role: int = 0
    appeal_statement: str = ""
    appealed_at: datetime | None = None
    appeal_decision: Decision | None = None

    @property
    def about_content(self) -> bool:
        return bool(self.target_service)

    @property
    def target_key(self) -> str:
        if self.about_content:
            return f"{self.target_service}:{self.target_kind}:{self.target_id}"
        return f"user:{self.target_user_id}"

    @property
    def open_key(self) -> str | None:
        """Set while the report awaits its first decision: one per reporter and target."""
        if self.state is not State.OPEN:
            return None
        return f"{self.reporter_user_id}|{self.target_key}"


def evidence_problem(entry: str) -> str | None:
    """Why an evidence entry is not acceptable, or None."""
    if len(entry) > MAX_EVIDENCE_LENGTH:
        return f"must be at most {MAX_EVIDENCE_LENGTH} characters"
    if entry.startswith("https://") and len(entry) > len("https://") and " " not in entry:
        return None
    if CONTENT_REFERENCE.fullmatch(entry):
        return None
    return "must be an https:// URL or a content reference such as content:post:<uuid>"


def file(
    community_id: str,
    reporter_user_id: str,
    *,
    target_user_id: str,
    target: tuple[str, str, str] | None,
    reason: Reason,
    details: str,
    evidence: list[str],
) -> Report:
    """A new open report; `target` is (service, kind, id) for content."""
    if target_user_id == reporter_user_id:
        raise InvalidArgument.field("target_user_id", "you cannot report yourself")
    service, kind, item = target or ("", "", "")
    return Report(
        id=str(uuid.uuid4()),
        community_id=community_id,
        reporter_user_id=reporter_user_id,
        target_user_id=target_user_id,
        target_service=service,
        target_kind=kind,
        target_id=item,
        reason=reason,
        details=details.strip(),
        evidence=list(evidence),
        state=State.OPEN,
        created_at=datetime.now(UTC),
    )


def resolve(
    report: Report | None,
    resolver_user_id: str,
    resolver: Membership | None,
    resolution: Resolution,
    note: str,
    until: datetime | None,
    remove_content: bool = False,
) -> Report:
    """The report decided. `resolver` None is a platform operator."""
    if report is None:
        raise NotFound("no such report in this community")
    now = datetime.now(UTC)
    decision = Decision(resolution, resolver_user_id, note.strip(), until, now, remove_content)
    if report.target_user_id and resolver_user_id == report.target_user_id:
        raise PermissionDenied("a report about you, and its appeal, are decided by someone else")
    if report.state is State.RESOLVED:
        raise FailedPrecondition(f"report {report.id} is already decided")
    if remove_content:
        _check_removal(report, resolution)
    if report.state is State.OPEN:
        if resolution not in FIRST_DECISIONS:
            raise InvalidArgument.field(
                "resolution", "an open report is dismissed, warned, muted or banned"
            )
        if resolution in ACTING and not report.target_user_id and not remove_content:
            raise FailedPrecondition(
                "this report names no member to act on (the content's author is unknown); "
                "dismiss it or act on the content",
            )
        return replace(
            report,
            state=State.RESOLVED,
            decision=decision,
            resolver_role=int(resolver.role) if resolver else int(Role.OWNER) + 1,
            version=report.version + 1,
        )
    if resolution not in APPEAL_DECISIONS:
        raise InvalidArgument.field("resolution", "an appealed report is upheld or overturned")
    assert report.decision is not None
    if resolver_user_id == report.decision.resolver_user_id:
        raise PermissionDenied("an appeal goes to someone other than who decided the report")
    if resolver is not None and (
        resolver.role < Role.ADMIN or int(resolver.role) <= report.resolver_role
    ):
        raise PermissionDenied(
            "an appeal is decided by an admin or owner ranking above the first resolver "
            f"(a {Role(min(report.resolver_role, int(Role.OWNER))).name.lower()})",
        )
    return replace(
        report, state=State.RESOLVED, appeal_decision=decision, version=report.version + 1
    )


def _check_removal(report: Report, resolution: Resolution) -> None:
    if not report.about_content:
        raise InvalidArgument.field(
            "remove_content", "this report is about a member, not a piece of content"
        )
    if report.state is not State.OPEN:
        raise InvalidArgument.field(
            "remove_content", "is decided with the report; an appeal's decision follows it"
        )
    if resolution is Resolution.DISMISS:
        raise InvalidArgument.field(
            "remove_content", "a dismissed report removes nothing; warn, mute or ban"
        )


def appeal(report: Report | None, user_id: str, statement: str) -> Report:
    # Only the member acted on learns the report exists.
    if report is None or report.target_user_id != user_id or report.decision is None:
        raise NotFound("no decision about you with that report id")
    if report.appealed_at is not None:
        raise FailedPrecondition("a decision is appealed once; this one was")
    if report.decision.resolution not in ACTING:
        raise FailedPrecondition("only a warning, mute or ban can be appealed")
    return replace(
        report,
        state=State.APPEALED,
        appeal_statement=statement.strip(),
        appealed_at=datetime.now(UTC),
        version=report.version + 1,
    )


def overturned_action(report: Report) -> Resolution | None:
    """The mute or ban an overturned appeal lifts."""
    if report.appeal_decision is None or report.appeal_decision.resolution is not (
        Resolution.OVERTURN
    ):
        return None
    assert report.decision is not None
    if report.decision.resolution in (Resolution.MUTE, Resolution.BAN):
        return report.decision.resolution
    return None
