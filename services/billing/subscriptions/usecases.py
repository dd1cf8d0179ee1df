"""What happens to subscriptions: started, renewed on schedule, dunned, moved between plans,
canceled and reactivated, and what a payment's outcome does to them.

Every change of a subscription commits with its events, its entitlement and its scheduled
jobs in one transaction. The scheduler (services/kit/schedule.py) runs two kinds of job:
`renew_subscription` (at the period's end, at each retry and at the end of the grace) and
`collect_subscription_charge` (asks the provider for a renewal charge the renewal recorded,
with the charge id as the provider's idempotency key, so a job run again never collects
twice). A provider that does not answer fails the collect job, which the scheduler tries
again with backoff. Whether a charge is paid is still the provider's webhook's to say
(services/billing/checkout/confirm.py), which hands subscription charges to `paid` and
`declined` here."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.catalog.domain import Product
from services.billing.catalog.store import ProductRepository
from services.billing.checkout import domain as checkout
from services.billing.checkout.domain import Charge, ChargeState, Invoice, InvoiceLine
from services.billing.checkout.store import ChargeRepository, InvoiceRepository
from services.billing.entitlements import engine
from services.billing.entitlements.domain import Entitlement, Source
from services.billing.entitlements.store import EntitlementRepository
from services.billing.payments.provider import Payment, PaymentProvider, ProviderRefused
from services.billing.subscriptions import domain, events
from services.billing.subscriptions.coupons import Coupon, check_redeemable
from services.billing.subscriptions.domain import Change, State, Subscription, Timing
from services.billing.subscriptions.store import (
    CouponRepository,
    PaymentRepository,
    SubscriptionRepository,
)
from services.billing.subscriptions.store import Payment as SubscriptionPayment
from services.kit.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable
from services.kit.schedule import Job, Jobs

RENEW = domain.RENEW
COLLECT = domain.COLLECT


class Subscriptions:
    def __init__(
        self,
        timing: Timing,
        jobs: Jobs,
        provider: PaymentProvider,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.timing = timing
        self.jobs = jobs
        self.provider = provider
        # Wakes this process's scheduler after a commit that set a job due now.
        self.wake = wake

    # -- calls ------------------------------------------------------------------------------

    async def start(
        self,
        session: AsyncSession,
        community_id: str,
        user_id: str,
        product_id: str,
        payment_method: str,
        now: datetime,
        coupon_code: str = "",
    ) -> tuple[Subscription, Charge | None]:
        product = await _product(session, community_id, product_id)
        subs = SubscriptionRepository(session)
        if await subs.live(community_id, user_id, product.id) is not None:
            raise AlreadyExists(
                f"{user_id} subscribes to product {product.id} already; change or cancel that "
                "subscription"
            )
        coupon = None
        if coupon_code:
            coupons = CouponRepository(session)
            coupon = await coupons.by_code(community_id, coupon_code)
            if coupon is None:
                raise NotFound(f"coupon_code: no coupon {coupon_code} in community {community_id}")
            eligible = await coupons.eligible(coupon, user_id)
            check_redeemable(coupon, product.price.currency, eligible, now)
        sub = domain.start(community_id, user_id, product, payment_method, self.timing, now, coupon)
        charge: Charge | None = None
        if sub.state is State.TRIALING:
            assert sub.period_end is not None
            sub = await self._grant(session, sub, sub.period_end, "", now)
            await self._renew_at(session, sub, sub.period_end)
        else:
            charge = await self._record_charge(
                session, sub, "start", 1, product, sub.period_price, now
            )
            sub = replace(sub, latest_charge_id=charge.id)
        await subs.save(sub)
        await events.created(session, sub, now)
        return sub, charge

    async def cancel(self, session: AsyncSession, sub: Subscription, now: datetime) -> Subscription:
        change = domain.cancel(sub, now)
        if change.after.state is State.ENDED:
            await self._end(session, change, now)
        else:
            await self._save(session, change, now)
        return change.after

    async def reactivate(
        self, session: AsyncSession, sub: Subscription, payment_method: str, now: datetime
    ) -> tuple[Subscription, Charge | None]:
        if sub.state is State.CANCELED:
            change = domain.undo_cancel(sub, now)
            await self._save(session, change, now)
            return change.after, None
        if sub.state is State.PAST_DUE:
            change = domain.paid_differently(sub, payment_method, now)
            await self._renew_at(session, change.after, now)
            await self._save(session, change, now)
            self.wake()
            return change.after, None
        product = await _product(session, sub.community_id, sub.product_id)
        change = domain.restart(sub, product, payment_method, now)
        if await SubscriptionRepository(session).live(
            sub.community_id, sub.user_id, sub.product_id
        ):
            raise AlreadyExists(
                f"{sub.user_id} subscribes to product {sub.product_id} again already"
            )
        charge = await self._record_charge(
            session, change.after, "start", 1, product, change.after.period_price, now
        )
        change = Change(change.before, replace(change.after, latest_charge_id=charge.id))
        await self._save(session, change, now)
        return change.after, charge

    async def change_plan(
        self, session: AsyncSession, sub: Subscription, product_id: str, now: datetime
    ) -> tuple[Subscription, Charge | None]:
        product = await _product(session, sub.community_id, product_id)
        domain.check_plan_change(sub, product)
        if await SubscriptionRepository(session).live(sub.community_id, sub.user_id, product.id):
            raise AlreadyExists(
                f"{sub.user_id} subscribes to product {product.id} already; cancel one of the two"
            )
        cost = (
            domain.prorated(sub, product.price.amount_minor, now)
            if sub.state is State.ACTIVE
            else 0
        )
        if cost > 0:
            # A dearer plan applies once the difference is paid.
            charge = await self._record_charge(session, sub, "proration", 1, product, cost, now)
            change = domain.awaiting_move(sub, product.id, charge.id, now)
            await SubscriptionRepository(session).save(change.after)
            return change.after, charge
        change = domain.moved_to(sub, product, -cost, now)
        await self._switch_entitlement(session, change.after, now)
        await self._save(session, change, now)
        return change.after, None

    async def create_coupon(
        self, session: AsyncSession, coupon: Coupon, members: list[str]
    ) -> Coupon:
        coupons = CouponRepository(session)
        if await coupons.by_code(coupon.community_id, coupon.code) is not None:
            raise AlreadyExists(f"coupon {coupon.code} exists in community {coupon.community_id}")
        made = replace(coupon, eligible_members=len(set(members)))
        await coupons.add(made, members)
        return made

    async def submit(self, charge: Charge) -> Payment:
        """Ask the provider to collect a charge recorded for a subscription; its webhook says
        whether it was paid."""
        return await self.provider.create_payment(
            idempotency_key=charge.id,
            amount_minor=charge.amount_minor,
            currency=charge.currency,
            payment_method=charge.payment_method,
            metadata={"charge_id": charge.id, "community_id": charge.community_id},
        )

    async def refused(
        self, session: AsyncSession, charge_id: str, why: str, now: datetime
    ) -> Charge:
        """The provider will never collect the charge (an unusable payment method): it fails
        as a decline would."""
        charges = ChargeRepository(session)
        current = await charges.get(charge_id, for_update=True)
        assert current is not None
        failed = checkout.moved(
            current, ChargeState.FAILED, now, failure_reason="payment_method_unusable"
        )
        if failed is None:
            return current
        await charges.save(failed)
        await self.declined(session, failed, now)
        return failed

    # -- payment outcomes, from the provider's webhooks -------------------------------------

    async def paid(self, session: AsyncSession, charge: Charge, now: datetime) -> bool:
        """A charge succeeded (its ledger posting is the caller's); whether it was a
        subscription's. A payment that no longer applies (the subscription moved on) changes
        nothing here: the money is in the books, and an admin refunds it."""
        payment = await PaymentRepository(session).of_charge(charge.id)
        if payment is None:
            return False
        subs = SubscriptionRepository(session)
        sub = await subs.get(payment.subscription_id, for_update=True)
        assert sub is not None
        if payment.purpose == "start" and sub.state is State.INCOMPLETE:
            if sub.latest_charge_id == charge.id:
                change = domain.first_paid(sub, self.timing, now)
                await self._paid_period(session, change, charge, now)
                await events.first_paid(session, change.after, charge, now)
        elif payment.purpose == "renewal" and self._renews_now(sub, payment):
            assert sub.period_end is not None
            if sub.state is State.ENDED:
                # The retries gave up while this one was under way: paid again, from now.
                change = domain.first_paid(sub, self.timing, now)
            else:
                change = domain.renewed(sub, sub.period_end, self.timing, now)
            await self._paid_period(session, change, charge, now)
        elif payment.purpose == "proration" and sub.pending_product_id == payment.product_id:
            product = await _product(session, sub.community_id, payment.product_id)
            change = domain.moved_to(sub, product, 0, now)
            await self._switch_entitlement(session, change.after, now)
            await self._save(session, change, now)
        return True

    async def declined(self, session: AsyncSession, charge: Charge, now: datetime) -> bool:
        """A charge failed; whether it was a subscription's."""
        payment = await PaymentRepository(session).of_charge(charge.id)
        if payment is None:
            return False
        sub = await SubscriptionRepository(session).get(payment.subscription_id, for_update=True)
        assert sub is not None
        if payment.purpose == "start" and sub.state is State.INCOMPLETE:
            if sub.latest_charge_id == charge.id:
                await self._save(session, domain.first_failed(sub, now), now)
                await events.payment_failed(session, sub, charge, 1, None, now)
        elif payment.purpose == "renewal" and self._renews_now(sub, payment):
            if sub.state is State.CANCELED:
                # Canceled while its renewal was under way: nothing more to try.
                await self._end(session, domain.ended(sub, now), now)
            elif domain.renewable(sub):
                change = domain.renewal_failed(sub, payment.attempt, self.timing, now)
                after = change.after
                assert after.period_end is not None
                # Access continues while billing tries again, to the end of the grace.
                grace_end = self.timing.grace_end(after.period_end)
                after = await self._grant(session, after, grace_end, "", now)
                change = Change(change.before, after)
                await self._renew_at(session, after, after.next_attempt_at or grace_end)
                await self._save(session, change, now)
                await events.payment_failed(
                    session, after, charge, payment.attempt, after.next_attempt_at, now
                )
        elif payment.purpose == "proration" and sub.pending_product_id == payment.product_id:
            await self._save(session, domain.move_failed(sub, now), now)
            await events.payment_failed(session, sub, charge, 1, None, now)
        return True

    # -- scheduled jobs ---------------------------------------------------------------------

    async def renew(self, session: AsyncSession, job: Job) -> None:
        """At the period's end (and at each retry, and at the end of the grace): end what was
        canceled or gave up, else record the renewal's charge and have it collected."""
        now = datetime.now(UTC)
        sub = await SubscriptionRepository(session).get(job.key, for_update=True)
        if sub is None:
            raise NotFound(f"subscription {job.key} is gone")
        if sub.state is State.CANCELED or (
            sub.state is State.PAST_DUE and sub.next_attempt_at is None
        ):
            await self._end(session, domain.ended(sub, now), now)
            return
        if not domain.renewable(sub):
            raise FailedPrecondition(f"subscription {sub.id} is {sub.state.name.lower()}")
        assert sub.period_end is not None
        if sub.period_end > now and sub.state is not State.PAST_DUE:
            raise FailedPrecondition(f"subscription {sub.id} renews at {sub.period_end}")
        attempt = sub.failed_attempts + 1
        if sub.renewal_minor == 0:
            # The credit of a move to a cheaper plan pays the whole period.
            change = domain.renewed(sub, sub.period_end, self.timing, now)
            after = await self._grant(session, change.after, change.after.period_end, "", now)
            await self._renew_at(session, after, after.period_end)
            await self._save(session, Change(change.before, after), now)
            return
        product = await ProductRepository(session).get(sub.community_id, sub.product_id)
        name = product.name if product else "Membership"
        charge = await self._record_charge(
            session, sub, "renewal", attempt, None, sub.renewal_minor, now, name=name
        )
        await SubscriptionRepository(session).save(domain.with_charge(sub, charge.id, now).after)
        await self.jobs.set(session, Job(COLLECT, charge.id, sub.community_id, now))
        self.wake()

    async def collect(self, session: AsyncSession, job: Job) -> None:
        """Ask the provider for a renewal charge. Unavailable is not a refusal here: the job
        fails and the scheduler tries again with backoff."""
        charge = await ChargeRepository(session).get(job.key)
        if charge is None or charge.state is not ChargeState.PENDING:
            return
        try:
            await self.submit(charge)
        except ProviderRefused as error:
            await self.refused(session, charge.id, str(error), datetime.now(UTC))
        except Unavailable as error:
            raise ConnectionError(str(error)) from None

    # -- helpers ----------------------------------------------------------------------------

    def _renews_now(self, sub: Subscription, payment: SubscriptionPayment) -> bool:
        """Whether the charge is the renewal of the subscription's current period: its id is
        made of the period's end and the attempt."""
        expected = domain.charge_id_for(sub.id, "renewal", sub.period_end, payment.attempt)
        return payment.charge_id == expected

    async def _paid_period(
        self, session: AsyncSession, change: Change, charge: Charge, now: datetime
    ) -> None:
        after = change.after
        assert after.period_end is not None
        after = await self._grant(session, after, after.period_end, charge.id, now)
        await self._renew_at(session, after, after.period_end)
        await self._save(session, Change(change.before, after), now)

    async def _save(self, session: AsyncSession, change: Change, now: datetime) -> None:
        await SubscriptionRepository(session).save(change.after)
        await events.changed(session, change, now)

    async def _end(self, session: AsyncSession, change: Change, now: datetime) -> None:
        """Over: no more jobs, and access ends now unless it ended already."""
        await self.jobs.cancel(session, RENEW, change.after.id)
        item = await self._entitlement(session, change.after)
        if item is not None and (item.end_at is None or item.end_at > now):
            await engine.revoke(session, item, now)
        await self._save(session, change, now)

    async def _renew_at(
        self, session: AsyncSession, sub: Subscription, at: datetime | None
    ) -> None:
        assert at is not None
        await self.jobs.set(session, Job(RENEW, sub.id, sub.community_id, at))

    async def _entitlement(self, session: AsyncSession, sub: Subscription) -> Entitlement | None:
        if not sub.entitlement_id:
            return None
        return await EntitlementRepository(session).get(sub.community_id, sub.entitlement_id)

    async def _grant(
        self,
        session: AsyncSession,
        sub: Subscription,
        until: datetime | None,
        charge_id: str,
        now: datetime,
    ) -> Subscription:
        """Access to the plan until `until`: the subscription's entitlement moved on (or made,
        or restored after an end), published as EntitlementGranted."""
        item = await self._entitlement(session, sub)
        if item is None or item.product_id != sub.product_id:
            item = Entitlement(
                id=sub.entitlement_id if item is None and sub.entitlement_id else _new_id(),
                community_id=sub.community_id,
                user_id=sub.user_id,
                product_id=sub.product_id,
                source=Source.SUBSCRIPTION,
                start_at=now,
                end_at=until,
                created_at=now,
                charge_id=charge_id,
            )
        else:
            item = replace(
                item,
                end_at=until,
                revoked_at=None,
                charge_id=charge_id or item.charge_id,
                version=item.version + 1,
            )
        await engine.grant(session, item)
        return domain.with_entitlement(sub, item.id)

    async def _switch_entitlement(
        self, session: AsyncSession, sub: Subscription, now: datetime
    ) -> Subscription:
        """A move to another plan: the old plan's access ends now, the new one's runs to the
        same end."""
        item = await self._entitlement(session, sub)
        if item is None or item.product_id == sub.product_id:
            return sub
        await engine.revoke(session, item, now)
        moved = Entitlement(
            id=_new_id(),
            community_id=sub.community_id,
            user_id=sub.user_id,
            product_id=sub.product_id,
            source=Source.SUBSCRIPTION,
            start_at=now,
            end_at=item.end_at,
            created_at=now,
            charge_id=item.charge_id,
        )
        await engine.grant(session, moved)
        return domain.with_entitlement(sub, moved.id)

    async def _record_charge(
        self,
        session: AsyncSession,
        sub: Subscription,
        purpose: str,
        attempt: int,
        product: Product | None,
        amount_minor: int,
        now: datetime,
        *,
        name: str = "",
    ) -> Charge:
        """A charge and its invoice for the subscription (one line), linked to it."""
        product_id = product.id if product else sub.product_id
        price_id = product.price_id if product else sub.price_id
        description = {"start": "First period", "renewal": "Renewal", "proration": "Plan change"}
        label = f"{product.name if product else name}: {description[purpose]}"
        charge_id = (
            domain.charge_id_for(sub.id, purpose, sub.period_end, attempt)
            if purpose == "renewal"
            else _new_id()
        )
        charge = Charge(
            id=charge_id,
            community_id=sub.community_id,
            user_id=sub.user_id,
            currency=sub.currency,
            amount_minor=amount_minor,
            product_ids=(product_id,),
            payment_method=sub.payment_method,
            created_at=now,
            updated_at=now,
        )
        invoices = InvoiceRepository(session)
        number = (await invoices.next_numbers([sub.community_id]))[sub.community_id]
        invoice = Invoice(
            id=_new_id(),
            community_id=sub.community_id,
            charge_id=charge.id,
            user_id=sub.user_id,
            number=number,
            currency=sub.currency,
            lines=(InvoiceLine(label[:200], product_id, price_id, amount_minor),),
            subtotal_minor=amount_minor,
            tax_minor=0,
            bill_to="",
            created_at=now,
        )
        await ChargeRepository(session).add_many([charge])
        await invoices.add_many([invoice])
        await PaymentRepository(session).add(
            SubscriptionPayment(charge.id, sub.id, purpose, attempt, product_id, now)
        )
        return charge


def _new_id() -> str:
    return str(uuid.uuid4())


async def _product(session: AsyncSession, community_id: str, product_id: str) -> Product:
    product = await ProductRepository(session).get(community_id, product_id)
    if product is None:
        raise NotFound(f"product_id: product {product_id} not found in community {community_id}")
    return product
