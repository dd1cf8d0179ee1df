"""gRPC handlers for subscriptions.

A call that records a charge (the first period, a reactivation after the end, a move to a
dearer plan) commits it through the idempotent writer, then asks the provider to collect it
with the charge id as the provider's idempotency key, as CreateCheckout does: a retry
replays the recorded answer and asks again, and the provider answers with the payment it
already has."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.checkout.messages import charge_to_proto
from services.billing.checkout.store import ChargeRepository
from services.billing.payments.provider import ProviderRefused
from services.billing.subscriptions import coupons
from services.billing.subscriptions.domain import Subscription
from services.billing.subscriptions.messages import coupon_to_proto, subscription_to_proto
from services.billing.subscriptions.store import CouponRepository, SubscriptionRepository
from services.billing.subscriptions.usecases import Subscriptions
from services.kit.access import Access, Role
from services.kit.auth import Identity, current_identity
from services.kit.database import Database
from services.kit.errors import NotFound, PermissionDenied
from services.kit.grouped_writes import Writer
from services.kit.paging import page_of, read_page
from services.kit.segments import segment_members
from services.kit.validation import Violations
from studyhall.billing.v1 import billing_service_pb2 as pb


class SubscriptionsApi:
    def __init__(
        self,
        database: Database,
        access: Access,
        writer: Writer,
        subscriptions: Subscriptions,
        on_commit: Callable[[], None],
        members: Callable[[], grpc.aio.Channel],
    ) -> None:
        self.database = database
        self.access = access
        self.writer = writer
        self.subscriptions = subscriptions
        self.on_commit = on_commit
        # The members service, asked for a segment's members when a coupon names one.
        self.members = members

    async def CreateSubscription(
        self, request: pb.CreateSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateSubscriptionResponse:
        caller = current_identity()
        _check_payment_method(request.payment_method)
        await self.access.require_role(
            request.community_id, caller, Role.MEMBER, "subscribing to a plan", writable=True
        )

        async def start(session: AsyncSession) -> pb.CreateSubscriptionResponse:
            sub, charge = await self.subscriptions.start(
                session,
                request.community_id,
                caller.user_id,
                request.product_id,
                request.payment_method,
                datetime.now(UTC),
                request.coupon_code,
            )
            return pb.CreateSubscriptionResponse(
                subscription=subscription_to_proto(sub),
                charge=charge_to_proto(charge) if charge else None,
            )

        recorded = await self.writer.write(
            caller.user_id, request, pb.CreateSubscriptionResponse, start
        )
        if not recorded.HasField("charge"):
            return recorded
        sub, charge = await self._collect(recorded.subscription.id, recorded.charge)
        return pb.CreateSubscriptionResponse(subscription=sub, charge=charge)

    async def GetSubscription(
        self, request: pb.GetSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSubscriptionResponse:
        caller = current_identity()
        sub = await self._readable(request.community_id, request.subscription_id, caller)
        return pb.GetSubscriptionResponse(subscription=subscription_to_proto(sub))

    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSubscriptionsResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(
            problems, request, ["subscriptions", request.community_id, request.user_id]
        )
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id,
            caller,
            Role.MEMBER if request.user_id == caller.user_id else Role.ADMIN,
            "reading the community's subscriptions",
        )
        async with self.database.read() as session:
            found = await SubscriptionRepository(session).newest_first(
                request.community_id, request.user_id, page.after, page.size + 1
            )
        items, token = page_of(found, page, lambda item: (item.created_at, item.id))
        return pb.ListSubscriptionsResponse(
            subscriptions=[subscription_to_proto(item) for item in items], next_page_token=token
        )

    async def CancelSubscription(
        self, request: pb.CancelSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelSubscriptionResponse:
        caller = current_identity()
        await self._readable(request.community_id, request.subscription_id, caller, writable=True)

        async def cancel(session: AsyncSession) -> pb.CancelSubscriptionResponse:
            sub = await self._get(session, request.community_id, request.subscription_id)
            canceled = await self.subscriptions.cancel(session, sub, datetime.now(UTC))
            return pb.CancelSubscriptionResponse(subscription=subscription_to_proto(canceled))

        return await self.writer.write(
            caller.user_id, request, pb.CancelSubscriptionResponse, cancel
        )

    async def ReactivateSubscription(
        self, request: pb.ReactivateSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReactivateSubscriptionResponse:
        caller = current_identity()
        if request.payment_method:
            _check_payment_method(request.payment_method)
        await self._own(request.community_id, request.subscription_id, caller, "reactivating")

        async def reactivate(session: AsyncSession) -> pb.ReactivateSubscriptionResponse:
            sub = await self._get(session, request.community_id, request.subscription_id)
            after, charge = await self.subscriptions.reactivate(
                session, sub, request.payment_method, datetime.now(UTC)
            )
            return pb.ReactivateSubscriptionResponse(
                subscription=subscription_to_proto(after),
                charge=charge_to_proto(charge) if charge else None,
            )

        recorded = await self.writer.write(
            caller.user_id, request, pb.ReactivateSubscriptionResponse, reactivate
        )
        if not recorded.HasField("charge"):
            return recorded
        sub, charge = await self._collect(recorded.subscription.id, recorded.charge)
        return pb.ReactivateSubscriptionResponse(subscription=sub, charge=charge)

    async def ChangeSubscriptionPlan(
        self, request: pb.ChangeSubscriptionPlanRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChangeSubscriptionPlanResponse:
        caller = current_identity()
        await self._own(
            request.community_id, request.subscription_id, caller, "changing the plan of"
        )

        async def change(session: AsyncSession) -> pb.ChangeSubscriptionPlanResponse:
            sub = await self._get(session, request.community_id, request.subscription_id)
            after, charge = await self.subscriptions.change_plan(
                session, sub, request.product_id, datetime.now(UTC)
            )
            return pb.ChangeSubscriptionPlanResponse(
                subscription=subscription_to_proto(after),
                charge=charge_to_proto(charge) if charge else None,
            )

        recorded = await self.writer.write(
            caller.user_id, request, pb.ChangeSubscriptionPlanResponse, change
        )
        if not recorded.HasField("charge"):
            return recorded
        sub, charge = await self._collect(recorded.subscription.id, recorded.charge)
        return pb.ChangeSubscriptionPlanResponse(subscription=sub, charge=charge)

    async def CreateCoupon(
        self, request: pb.CreateCouponRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCouponResponse:
        caller = current_identity()
        now = datetime.now(UTC)
        coupon = coupons.new_coupon(
            community_id=request.community_id,
            code=request.code,
            percent_off=request.percent_off,
            amount_off=(
                (request.amount_off.currency, request.amount_off.amount_minor)
                if request.HasField("amount_off")
                else None
            ),
            duration=int(request.duration),
            duration_periods=request.duration_periods,
            expires_at=request.expire_time.ToDatetime(UTC)
            if request.HasField("expire_time")
            else None,
            segment_id=request.segment_id,
            created_by=caller.user_id,
            now=now,
        )
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "creating a coupon", writable=True
        )
        members: list[str] = []
        if request.segment_id:
            # A snapshot of the segment now, with the caller's own rights (decision 0015).
            members = await segment_members(
                self.members(), caller, request.community_id, request.segment_id
            )

        async def create(session: AsyncSession) -> pb.CreateCouponResponse:
            made = await self.subscriptions.create_coupon(session, coupon, members)
            return pb.CreateCouponResponse(coupon=coupon_to_proto(made))

        return await self.writer.write(caller.user_id, request, pb.CreateCouponResponse, create)

    async def ListCoupons(
        self, request: pb.ListCouponsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCouponsResponse:
        caller = current_identity()
        problems = Violations()
        page = read_page(problems, request, ["coupons", request.community_id])
        problems.raise_if_any()
        await self.access.require_role(
            request.community_id, caller, Role.ADMIN, "reading the community's coupons"
        )
        async with self.database.read() as session:
            found = await CouponRepository(session).newest_first(
                request.community_id, page.after, page.size + 1
            )
        items, token = page_of(found, page, lambda item: (item.created_at, item.id))
        return pb.ListCouponsResponse(
            coupons=[coupon_to_proto(item) for item in items], next_page_token=token
        )

    # -- helpers ----------------------------------------------------------------------------

    async def _collect(
        self, subscription_id: str, recorded: pb.Charge
    ) -> tuple[pb.Subscription, pb.Charge]:
        """Ask the provider for a recorded charge; nothing is written unless the provider
        refuses it for good (the charge then fails as a decline would)."""
        async with self.database.read() as session:
            charge = await ChargeRepository(session).get(recorded.id)
        assert charge is not None
        try:
            payment = await self.subscriptions.submit(charge)
        except ProviderRefused as error:
            why = str(error)
            await self._write(
                lambda session: self.subscriptions.refused(
                    session, recorded.id, why, datetime.now(UTC)
                )
            )
            payment = None
        async with self.database.read() as session:
            sub = await SubscriptionRepository(session).get(subscription_id)
            charge = await ChargeRepository(session).get(recorded.id)
        assert sub is not None
        assert charge is not None
        answer = charge_to_proto(charge)
        if payment is not None:
            answer.provider_payment_id = answer.provider_payment_id or payment.id
            if payment.status == "requires_action" and answer.state == pb.CHARGE_STATE_PENDING:
                answer.state = pb.CHARGE_STATE_REQUIRES_ACTION
                answer.next_action_url = payment.next_action_url
        return subscription_to_proto(sub), answer

    async def _write(self, action: Callable[[AsyncSession], Awaitable[object]]) -> None:
        async with self.database.write() as session:
            await action(session)
        self.on_commit()

    async def _get(
        self, session: AsyncSession, community_id: str, subscription_id: str
    ) -> Subscription:
        sub = await SubscriptionRepository(session).get(
            subscription_id, community_id, for_update=True
        )
        if sub is None:
            raise NotFound(f"subscription {subscription_id} not found in community {community_id}")
        return sub

    async def _readable(
        self, community_id: str, subscription_id: str, caller: Identity, *, writable: bool = False
    ) -> Subscription:
        """The subscriber's own, or any of the community's for its admins."""
        async with self.database.read() as session:
            sub = await SubscriptionRepository(session).get(subscription_id, community_id)
        if sub is None or sub.user_id != caller.user_id or writable:
            await self.access.require_role(
                community_id,
                caller,
                Role.MEMBER if sub is not None and sub.user_id == caller.user_id else Role.ADMIN,
                "acting on another member's subscription",
                writable=writable,
            )
        if sub is None:
            raise NotFound(f"subscription {subscription_id} not found in community {community_id}")
        return sub

    async def _own(
        self, community_id: str, subscription_id: str, caller: Identity, what: str
    ) -> None:
        await self.access.require_role(
            community_id, caller, Role.MEMBER, f"{what} a subscription", writable=True
        )
        async with self.database.read() as session:
            sub = await SubscriptionRepository(session).get(subscription_id, community_id)
        if sub is None:
            raise NotFound(f"subscription {subscription_id} not found in community {community_id}")
        if sub.user_id != caller.user_id and not caller.operator:
            raise PermissionDenied(
                f"{what} subscription {sub.id}: only its author, the subscriber, may"
            )


def _check_payment_method(payment_method: str) -> None:
    problems = Violations()
    if not payment_method.isprintable():
        problems.add("payment_method", "must be the provider's token, e.g. pm_card_visa")
    problems.raise_if_any()
