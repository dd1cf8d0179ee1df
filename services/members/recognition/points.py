"""What earns points: the rule table for facts from the backbone, and the rules of manual
awards and kudos. Pure rules, no I/O. The README's points table mirrors RULES."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.kit.errors import InvalidArgument, PermissionDenied


@dataclass(frozen=True)
class Rule:
    reason: str
    amount: int
    # Who earns: the fact's field naming the member.
    recipient: str = "user_id"
    # When set, the amount is this field of the fact, clamped to 0..MAX_REWARD.
    amount_field: str = ""
    # When set, the fact's fields that make it one reward: a second fact with the same
    # values (published again, replayed from a dead letter) lands nothing. Else the
    # CloudEvent id does.
    once_per: tuple[str, ...] = ()


# By `ce-type`. A zero amount still counts as activity (last_active_at) but adds no entry.
RULES: dict[str, Rule] = {
    "studyhall.content.v1.PostCreated": Rule("post_created", 2, recipient="author_user_id"),
    "studyhall.content.v1.AnswerAccepted": Rule(
        "answer_accepted", 5, recipient="answer_author_user_id"
    ),
    # Taking an acceptance back takes its points back: a correction entry.
    "studyhall.content.v1.AnswerUnaccepted": Rule(
        "answer_unaccepted", -5, recipient="answer_author_user_id"
    ),
    "studyhall.content.v1.PathCompleted": Rule("path_completed", 10),
    "studyhall.events.v1.AttendanceRecorded": Rule("attended", 3),
    # One reward per member and challenge, whatever the events service sends.
    "studyhall.events.v1.ChallengeCompleted": Rule(
        "challenge_completed",
        0,
        amount_field="reward_points",
        once_per=("challenge_id", "user_id"),
    ),
    "studyhall.members.v1.CheckedIn": Rule("checked_in", 1),
    "studyhall.members.v1.MemberJoined": Rule("member_joined", 0),
}

MAX_MANUAL = 1000
# What one fact may carry as its own reward (a challenge's): the bound of a manual award.
MAX_REWARD = 1000


def reward(rule: Rule, carried: int) -> int:
    """The points a fact earns under `rule`; a carried amount is clamped to 0..MAX_REWARD."""
    if not rule.amount_field:
        return rule.amount
    return max(0, min(MAX_REWARD, carried))


def source_id(rule: Rule, fact: object, event_id: str) -> str:
    """The ledger's source id for a fact under `rule`: what makes its award land once."""
    if not rule.once_per:
        return event_id
    return ":".join((rule.reason, *(str(getattr(fact, name)) for name in rule.once_per)))


KUDOS = 1
MANUAL = "manual"
KUDOS_REASON = "kudos"


@dataclass(frozen=True)
class Award:
    """Points about to land in a member's ledger."""

    community_id: str
    user_id: str
    amount: int
    reason: str
    source_event_id: str
    created_at: datetime
    awarded_by: str = ""
    note: str = ""
    # From a CheckedIn fact, for the streak badge; 0 otherwise.
    streak_days: int = 0


def manual_award(
    *,
    community_id: str,
    giver: str,
    recipient: str,
    amount: int,
    note: str,
    moderator: bool,
    muted: bool,
    may_give_kudos: bool,
    local_day: date,
    now: datetime,
    request_id: str,
) -> Award:
    """A moderator's award or correction, or a member's kudos; refuses what neither may do."""
    if moderator:
        return Award(
            community_id=community_id,
            user_id=recipient,
            amount=amount,
            reason=MANUAL,
            source_event_id=f"manual:{request_id}",
            created_at=now,
            awarded_by=giver,
            note=note,
        )
    if amount != KUDOS:
        raise InvalidArgument.field(
            "amount",
            f"members may give kudos of exactly +{KUDOS}; other amounts need the moderator role",
        )
    if recipient == giver:
        raise InvalidArgument.field("user_id", "kudos go to another member, not to yourself")
    if muted:
        raise PermissionDenied("muted members cannot give kudos until the mute ends")
    if not may_give_kudos:
        raise PermissionDenied(
            "giving kudos needs the give_kudos privilege, unlocked at a higher level",
        )
    return Award(
        community_id=community_id,
        user_id=recipient,
        amount=KUDOS,
        reason=KUDOS_REASON,
        # One kudos per giver, recipient and local day: a second one is the same fact.
        source_event_id=f"kudos:{giver}:{recipient}:{local_day.isoformat()}",
        created_at=now,
        awarded_by=giver,
        note=note,
    )
