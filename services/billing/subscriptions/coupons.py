"""Coupons: a discount subscribers enter by code. Rules only, no I/O; every rule takes `now`.

A coupon takes a percentage or an amount off each discounted period: the first paid period
(ONCE), the first N (REPEATING) or every one (FOREVER); it can no longer be entered after
it expires, and when it names a segment only the members the segment held when the coupon
was made may enter it (a snapshot: docs/decisions/0015)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from services.kit.errors import FailedPrecondition, InvalidArgument
from services.kit.validation import Violations

CODE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# A discount lasts at most this many periods when it repeats (ten years of months).
MAX_PERIODS = 120


class Duration(IntEnum):
    """CouponDuration of billing_service.proto."""

    ONCE = 1
    REPEATING = 2
    FOREVER = 3


FOREVER = -1


@dataclass(frozen=True)
class Coupon:
    id: str
    community_id: str
    code: str
    percent_off: int
    currency: str
    amount_off_minor: int
    duration: Duration
    duration_periods: int
    expires_at: datetime | None
    segment_id: str
    eligible_members: int
    created_by: str
    created_at: datetime

    @property
    def periods(self) -> int:
        """How many paid periods it discounts; FOREVER (-1) for every one."""
        if self.duration is Duration.FOREVER:
            return FOREVER
        return 1 if self.duration is Duration.ONCE else self.duration_periods


def new_coupon(
    *,
    community_id: str,
    code: str,
    percent_off: int,
    amount_off: tuple[str, int] | None,
    duration: int,
    duration_periods: int,
    expires_at: datetime | None,
    segment_id: str,
    created_by: str,
    now: datetime,
) -> Coupon:
    """A valid coupon, or INVALID_ARGUMENT naming every bad field."""
    problems = Violations()
    if not CODE.match(code):
        problems.add("code", "must be 1-40 letters, digits, '-' or '_'")
    if amount_off is None:
        if not 1 <= percent_off <= 100:
            problems.add("percent_off", "must be 1-100, or give amount_off instead")
    else:
        currency, amount = amount_off
        if percent_off:
            problems.add("percent_off", "give a percentage or an amount off, not both")
        if not re.match(r"^[A-Z]{3}$", currency):
            problems.add("amount_off.currency", "must be an ISO 4217 code, e.g. EUR")
        if amount <= 0:
            problems.add("amount_off.amount_minor", "must be more than zero")
    if duration not in {d.value for d in Duration}:
        problems.add("duration", "must be ONCE, REPEATING or FOREVER")
    elif duration == Duration.REPEATING and not 1 <= duration_periods <= MAX_PERIODS:
        problems.add("duration_periods", f"must be 1-{MAX_PERIODS} for a repeating coupon")
    elif duration != Duration.REPEATING and duration_periods:
        problems.add("duration_periods", "only a repeating coupon lasts a number of periods")
    if expires_at is not None and expires_at <= now:
        problems.add("expire_time", "must be in the future")
    problems.raise_if_any()
    return Coupon(
        id=str(uuid.uuid4()),
        community_id=community_id,
        code=code,
        percent_off=percent_off if amount_off is None else 0,
        currency=amount_off[0] if amount_off else "",
        amount_off_minor=amount_off[1] if amount_off else 0,
        duration=Duration(duration),
        duration_periods=duration_periods,
        expires_at=expires_at,
        segment_id=segment_id,
        eligible_members=0,
        created_by=created_by,
        created_at=now,
    )


def check_redeemable(coupon: Coupon, currency: str, eligible: bool, now: datetime) -> None:
    """Whether a member may subscribe with it now, to a plan in `currency`."""
    if coupon.expires_at is not None and coupon.expires_at <= now:
        raise FailedPrecondition(f"coupon {coupon.code} expired")
    if not eligible:
        raise FailedPrecondition(
            f"coupon {coupon.code} is for the members of segment {coupon.segment_id}"
        )
    if coupon.amount_off_minor and coupon.currency != currency:
        raise InvalidArgument.field(
            "coupon_code",
            f"coupon {coupon.code} takes {coupon.currency} off; the plan costs in {currency}",
        )


def discounted(amount_minor: int, percent_off: int, amount_off_minor: int) -> int:
    """A period's price after the discount, never below zero; a percentage rounds to the
    nearest unit (halves up)."""
    if percent_off:
        return amount_minor - (amount_minor * percent_off + 50) // 100
    return max(amount_minor - amount_off_minor, 0)
