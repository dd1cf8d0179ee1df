"""Invite links: rules only, no I/O.

A code is a bearer secret, so the store keeps only its SHA-256 and the first characters
(for people to tell their links apart). Counting uses is the store's job: a conditional
update is the only way to count exactly when many people join at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.members.communities.domain import Community

DEFAULT_LIFETIME = timedelta(days=7)
MAX_LIFETIME = timedelta(days=90)
MAX_USES = 10_000
PREFIX_LENGTH = 4
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,100}")


@dataclass(frozen=True)
class Invite:
    id: str
    community_id: str
    code_prefix: str
    creator_user_id: str
    created_at: datetime
    expires_at: datetime
    max_uses: int
    uses: int = 0
    revoked_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return (
            self.revoked_at is None
            and self.expires_at > now
            and (self.max_uses == 0 or self.uses < self.max_uses)
        )


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def new_invite(
    community: Community, creator: str, expires_at: datetime | None, max_uses: int
) -> tuple[Invite, str]:
    """An invite and its code (which only the creator ever sees)."""
    if community.archived_at is not None:
        raise FailedPrecondition(f"community {community.id} is archived")
    now = datetime.now(UTC)
    if expires_at is not None and expires_at <= now:
        raise InvalidArgument.field("expire_time", "expire_time must be in the future")
    if expires_at is not None and expires_at > now + MAX_LIFETIME:
        raise InvalidArgument.field("expire_time", "expire_time must be at most 90 days ahead")
    code = secrets.token_urlsafe(24)
    invite = Invite(
        id=str(uuid.uuid4()),
        community_id=community.id,
        code_prefix=code[:PREFIX_LENGTH],
        creator_user_id=creator,
        created_at=now,
        expires_at=expires_at or now + DEFAULT_LIFETIME,
        max_uses=max_uses,
    )
    return invite, code


def revoke(invite: Invite | None, invite_id: str) -> Invite:
    if invite is None:
        raise NotFound(f"invite {invite_id} not found in this community")
    if invite.revoked_at is not None:
        raise FailedPrecondition(f"invite {invite_id} is already revoked")
    return replace(invite, revoked_at=datetime.now(UTC))


def check_usable(invite: Invite) -> None:
    """Refuses an invite that no longer admits anyone, saying why."""
    now = datetime.now(UTC)
    if invite.revoked_at is not None:
        raise FailedPrecondition("this invite was revoked; ask for a new one")
    if invite.expires_at <= now:
        raise FailedPrecondition(
            f"this invite expired at {invite.expires_at:%Y-%m-%d %H:%M} UTC; ask for a new one",
        )
    if invite.max_uses and invite.uses >= invite.max_uses:
        raise FailedPrecondition("this invite has been used up; ask for a new one")
