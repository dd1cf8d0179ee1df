"""`studyhall subscription subscribe|show|list|cancel|reactivate|change` and `studyhall
coupon create|list`: members' recurring payments for membership plans and the coupons that
discount them, in the billing service."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from services.cli.common import (
    AsJson,
    AsUser,
    RequestId,
    call,
    enum_option,
    metadata,
    out,
    show,
    stub,
)
from studyhall.billing.v1 import billing_events_pb2 as events
from studyhall.billing.v1 import billing_service_pb2 as pb
from studyhall.billing.v1 import billing_service_pb2_grpc as pb_grpc

subscription_app = typer.Typer(
    help="Subscriptions to membership plans: trials, renewals, plan changes.",
    no_args_is_help=True,
)

coupon_app = typer.Typer(
    help="Coupons for subscriptions: a percentage or an amount off, for a segment.",
    no_args_is_help=True,
)

PaymentMethod = Annotated[
    str, typer.Option(help="The provider's token: pm_card_visa, pm_card_chargeDeclined, ...")
]


def state_name(state: int) -> str:
    return events.SubscriptionState.Name(state).removeprefix("SUBSCRIPTION_STATE_").lower()  # type: ignore[arg-type]


def _summary(sub: pb.Subscription, charge: pb.Charge | None) -> None:
    end = sub.current_period_end.ToJsonString() if sub.HasField("current_period_end") else "-"
    out.print(f"subscription {sub.id}: {state_name(sub.state)}, period ends {end}")
    if charge is not None and charge.id:
        state = pb.ChargeState.Name(charge.state).removeprefix("CHARGE_STATE_").lower()
        out.print(
            f"charge {charge.id}: {charge.amount.amount_minor} {charge.amount.currency}, {state}"
        )
        if charge.next_action_url:
            out.print(f"authenticate at: {charge.next_action_url}")


@subscription_app.command("subscribe")
def subscribe(
    community_id: str,
    product_id: str,
    payment_method: PaymentMethod = "pm_card_visa",
    coupon_code: Annotated[str, typer.Option(help="A coupon's code, to pay less.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Subscribe to a membership plan: a trial when it has one, else the first period's charge."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.CreateSubscription,
            pb.CreateSubscriptionRequest(
                request_id=request_id or str(uuid.uuid4()),
                community_id=community_id,
                product_id=product_id,
                payment_method=payment_method,
                coupon_code=coupon_code,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "subscription")
        return
    _summary(reply.subscription, reply.charge if reply.HasField("charge") else None)


@subscription_app.command("show")
def show_subscription(
    community_id: str, subscription_id: str, as_user: AsUser = None, as_json: AsJson = False
) -> None:
    """One subscription: your own, or any of the community's for its admins."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.GetSubscription,
            pb.GetSubscriptionRequest(community_id=community_id, subscription_id=subscription_id),
            metadata(as_user),
        )
    show(reply.subscription, as_json, "subscription")


@subscription_app.command("list")
def list_subscriptions(
    community_id: str,
    user_id: Annotated[str, typer.Option(help="Only this member's (your own: any member).")] = "",
    page_size: Annotated[int, typer.Option(help="How many per page (at most 100).")] = 0,
    page_token: Annotated[str, typer.Option(help="The next page token printed before.")] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's subscriptions, newest first."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.ListSubscriptions,
            pb.ListSubscriptionsRequest(
                community_id=community_id,
                user_id=user_id,
                page_size=page_size,
                page_token=page_token,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "subscriptions")
        return
    table = Table(title="subscriptions")
    for column in ("id", "user", "plan", "state", "price", "period ends"):
        table.add_column(column)
    for sub in reply.subscriptions:
        table.add_row(
            sub.id,
            sub.user_id,
            sub.product_id,
            state_name(sub.state),
            f"{sub.price.amount_minor} {sub.price.currency} (minor units)",
            sub.current_period_end.ToJsonString() if sub.HasField("current_period_end") else "",
        )
    out.print(table)
    if reply.next_page_token:
        out.print(f"next page: --page-token {reply.next_page_token}")


@subscription_app.command("cancel")
def cancel(
    community_id: str,
    subscription_id: str,
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Cancel at the end of the paid period (a past due one ends now)."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.CancelSubscription,
            pb.CancelSubscriptionRequest(
                request_id=request_id or str(uuid.uuid4()),
                community_id=community_id,
                subscription_id=subscription_id,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "subscription")
        return
    _summary(reply.subscription, None)


@subscription_app.command("reactivate")
def reactivate(
    community_id: str,
    subscription_id: str,
    payment_method: Annotated[
        str, typer.Option(help="A new payment method (required when past due).")
    ] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Undo a cancel, pay a past due renewal with a new card, or subscribe again after the end."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.ReactivateSubscription,
            pb.ReactivateSubscriptionRequest(
                request_id=request_id or str(uuid.uuid4()),
                community_id=community_id,
                subscription_id=subscription_id,
                payment_method=payment_method,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "subscription")
        return
    _summary(reply.subscription, reply.charge if reply.HasField("charge") else None)


@subscription_app.command("change")
def change(
    community_id: str,
    subscription_id: str,
    product_id: Annotated[str, typer.Argument(help="The plan to move to.")],
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Move to another plan, prorated for what is left of the period."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.ChangeSubscriptionPlan,
            pb.ChangeSubscriptionPlanRequest(
                request_id=request_id or str(uuid.uuid4()),
                community_id=community_id,
                subscription_id=subscription_id,
                product_id=product_id,
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "subscription")
        return
    _summary(reply.subscription, reply.charge if reply.HasField("charge") else None)


class Duration(StrEnum):
    once = "once"
    repeating = "repeating"
    forever = "forever"


@coupon_app.command("create")
def coupon_create(
    community_id: str,
    code: str,
    percent_off: Annotated[int, typer.Option(help="A percentage off (1-100).")] = 0,
    amount_off_minor: Annotated[int, typer.Option(help="Or an amount off, in minor units.")] = 0,
    currency: Annotated[str, typer.Option(help="The amount's currency.")] = "",
    duration: Annotated[
        Duration, typer.Option(help="How long the discount lasts.")
    ] = Duration.once,
    periods: Annotated[int, typer.Option(help="For repeating: how many paid periods.")] = 0,
    expires: Annotated[str, typer.Option(help="When it expires, RFC 3339; empty: never.")] = "",
    segment_id: Annotated[str, typer.Option(help="Only for this segment's members now.")] = "",
    request_id: RequestId = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """Create a coupon subscribers enter by its code."""
    request = pb.CreateCouponRequest(
        request_id=request_id or str(uuid.uuid4()),
        community_id=community_id,
        code=code,
        percent_off=percent_off,
        duration=enum_option(pb.CouponDuration, "COUPON_DURATION_", duration.value),  # type: ignore[arg-type]
        duration_periods=periods,
        segment_id=segment_id,
    )
    if amount_off_minor or currency:
        request.amount_off.CopyFrom(pb.Money(currency=currency, amount_minor=amount_off_minor))
    if expires:
        request.expire_time.FromJsonString(expires)
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(client.CreateCoupon, request, metadata(as_user))
    show(reply.coupon, as_json, "coupon")


@coupon_app.command("list")
def coupon_list(
    community_id: str,
    page_size: Annotated[int, typer.Option(help="How many per page (at most 100).")] = 0,
    page_token: Annotated[str, typer.Option(help="The next page token printed before.")] = "",
    as_user: AsUser = None,
    as_json: AsJson = False,
) -> None:
    """A community's coupons, newest first."""
    with stub("billing", pb_grpc.BillingServiceStub) as client:
        reply = call(
            client.ListCoupons,
            pb.ListCouponsRequest(
                community_id=community_id, page_size=page_size, page_token=page_token
            ),
            metadata(as_user),
        )
    if as_json:
        show(reply, True, "coupons")
        return
    table = Table(title="coupons")
    for column in ("code", "off", "duration", "segment", "expires"):
        table.add_column(column)
    for coupon in reply.coupons:
        off = (
            f"{coupon.percent_off}%"
            if coupon.percent_off
            else f"{coupon.amount_off.amount_minor} {coupon.amount_off.currency} (minor units)"
        )
        table.add_row(
            coupon.code,
            off,
            pb.CouponDuration.Name(coupon.duration).removeprefix("COUPON_DURATION_").lower(),
            coupon.segment_id,
            coupon.expire_time.ToJsonString() if coupon.HasField("expire_time") else "",
        )
    out.print(table)
    if reply.next_page_token:
        out.print(f"next page: --page-token {reply.next_page_token}")
