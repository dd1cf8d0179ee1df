"""Subscriptions as the API's messages."""

from __future__ import annotations

from services.billing.subscriptions.coupons import Coupon
from services.billing.subscriptions.domain import Subscription
from services.kit.timestamps import timestamp, timestamp_or_none
from studyhall.billing.v1 import billing_service_pb2 as pb


def subscription_to_proto(sub: Subscription) -> pb.Subscription:
    return pb.Subscription(
        id=sub.id,
        community_id=sub.community_id,
        user_id=sub.user_id,
        product_id=sub.product_id,
        price=pb.Money(currency=sub.currency, amount_minor=sub.amount_minor),
        billing_period=pb.BillingPeriod.ValueType(int(sub.billing_period)),
        state=int(sub.state),
        current_period_start=timestamp_or_none(sub.period_start),
        current_period_end=timestamp_or_none(sub.period_end),
        trialing=sub.trialing,
        failed_attempts=sub.failed_attempts,
        next_attempt_time=timestamp_or_none(sub.next_attempt_at),
        credit_minor=sub.credit_minor,
        pending_product_id=sub.pending_product_id,
        latest_charge_id=sub.latest_charge_id,
        version=sub.version,
        create_time=timestamp(sub.created_at),
        update_time=timestamp(sub.updated_at),
        coupon_id=sub.coupon_id,
        discount_periods_left=sub.discount_periods_left,
    )


def coupon_to_proto(coupon: Coupon) -> pb.Coupon:
    return pb.Coupon(
        id=coupon.id,
        community_id=coupon.community_id,
        code=coupon.code,
        percent_off=coupon.percent_off,
        amount_off=(
            pb.Money(currency=coupon.currency, amount_minor=coupon.amount_off_minor)
            if coupon.amount_off_minor
            else None
        ),
        duration=pb.CouponDuration.ValueType(int(coupon.duration)),
        duration_periods=coupon.duration_periods,
        expire_time=timestamp_or_none(coupon.expires_at),
        segment_id=coupon.segment_id,
        eligible_members=coupon.eligible_members,
        create_time=timestamp(coupon.created_at),
    )
