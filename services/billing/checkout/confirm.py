"""What the provider's webhook events do: the one place a charge or refund becomes final.

Each event is applied in one transaction with its provider event id (webhook_events), so a
redelivery finds the id and changes nothing. Events may come in any order: a charge that is
final stays as it is, and the ledger's unique key on (kind, charge, refund) would refuse a
second posting even if two deliveries raced."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.billing.catalog.store import ProductRepository
from services.billing.checkout import domain, events
from services.billing.checkout.domain import ChargeState, RefundState
from services.billing.checkout.store import ChargeRepository, InvoiceRepository, RefundRepository
from services.billing.entitlements import engine
from services.billing.ledger import domain as ledger
from services.billing.ledger.store import Ledger
from services.billing.payments.webhooks import PoisonEvent, ProviderEvent
from services.billing.store.tables import webhook_events
from services.kit.database import Database, insert_for
from services.kit.idempotency import ATTEMPTS, contended

DECLINE_CODES = {
    "card_declined": "declined",
    "insufficient_funds": "declined",
    "expired_card": "payment_method_unusable",
    "authentication_required": "authentication_required",
}


class RecurringPayments(Protocol):
    """What a charge's outcome does beyond the books when it pays for a subscription (handed
    in by app.py: subscriptions build on checkout). Each answers whether the charge was a
    subscription's; the ledger posting stays here."""

    async def paid(self, session: AsyncSession, charge: domain.Charge, now: datetime) -> bool: ...

    async def declined(
        self, session: AsyncSession, charge: domain.Charge, now: datetime
    ) -> bool: ...


class _OneOff:
    async def paid(self, session: AsyncSession, charge: domain.Charge, now: datetime) -> bool:
        return False

    async def declined(self, session: AsyncSession, charge: domain.Charge, now: datetime) -> bool:
        return False


class Confirmations:
    def __init__(
        self,
        database: Database,
        on_commit: Callable[[], None],
        recurring: RecurringPayments | None = None,
    ) -> None:
        self.database = database
        self.on_commit = on_commit
        self.recurring = recurring or _OneOff()

    async def apply(self, event: ProviderEvent) -> str:
        """Apply `event` once; what it did, in a few words."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.database.write() as session:
                    if not await _first_time(session, event):
                        return "already applied"
                    outcome = await _apply(session, event, datetime.now(UTC), self.recurring)
                break
            except Exception as error:
                if not contended(error) or attempt == ATTEMPTS:
                    raise
        self.on_commit()
        return outcome


async def _first_time(session: AsyncSession, event: ProviderEvent) -> bool:
    dialect = session.get_bind().dialect.name
    insert = insert_for(dialect)
    claimed = await session.scalar(
        insert(webhook_events)
        .values(event_id=event.id, type=event.type, received_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(webhook_events.c.event_id)
    )
    return claimed is not None


async def _apply(
    session: AsyncSession, event: ProviderEvent, now: datetime, recurring: RecurringPayments
) -> str:
    obj = event.object
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    if event.type.startswith("payment_intent."):
        charge = await ChargeRepository(session).get(
            str(metadata.get("charge_id", "")), for_update=True
        )
        if charge is None:
            raise PoisonEvent(f"{event.type} names no charge of billing's")
        if int(obj.get("amount", -1)) != charge.amount_minor or (
            str(obj.get("currency", "")).upper() != charge.currency
        ):
            raise PoisonEvent(f"{event.type} for charge {charge.id}: amount or currency differ")
        if event.type == "payment_intent.succeeded":
            return await _succeeded(session, charge, str(obj.get("id", "")), now, recurring)
        if event.type == "payment_intent.requires_action":
            action = obj.get("next_action") or {}
            url = str((action.get("redirect_to_url") or {}).get("url", ""))
            changed = domain.moved(
                charge,
                ChargeState.REQUIRES_ACTION,
                now,
                next_action_url=url,
                provider_payment_id=str(obj.get("id", "")),
            )
            if changed is None or charge.state is not ChargeState.PENDING:
                return "stale"
            await ChargeRepository(session).save(changed)
            return "requires action"
        if event.type == "payment_intent.payment_failed":
            error = obj.get("last_payment_error") or {}
            reason = DECLINE_CODES.get(str(error.get("code", "")), "declined")
            changed = domain.moved(
                charge,
                ChargeState.FAILED,
                now,
                failure_reason=reason,
                next_action_url="",
                provider_payment_id=str(obj.get("id", "")),
            )
            if changed is None:
                return "stale"
            await ChargeRepository(session).save(changed)
            if not await recurring.declined(session, changed, now):
                await events.failed(session, changed, now)
            return "failed"
        return "ignored"
    if event.type == "refund.updated":
        refund = await RefundRepository(session).get(
            str(metadata.get("refund_id", "")), for_update=True
        )
        if refund is None:
            raise PoisonEvent("refund.updated names no refund of billing's")
        return await _refund_settled(session, refund, str(obj.get("status", "")), now)
    return "ignored"


async def _succeeded(
    session: AsyncSession,
    charge: domain.Charge,
    payment_id: str,
    now: datetime,
    recurring: RecurringPayments,
) -> str:
    changed = domain.moved(
        charge,
        ChargeState.SUCCEEDED,
        now,
        next_action_url="",
        provider_payment_id=charge.provider_payment_id or payment_id,
    )
    if changed is None:
        return "stale"
    await ChargeRepository(session).save(changed)
    invoice = await InvoiceRepository(session).of_charge(charge.id)
    tax = invoice.tax_minor if invoice else 0
    await Ledger(session).append(
        ledger.charge_paid(
            charge.community_id, charge.id, charge.currency, charge.amount_minor - tax, tax, now
        )
    )
    if await recurring.paid(session, changed, now):
        return "succeeded"
    found = await ProductRepository(session).many(charge.community_id, charge.product_ids)
    products = [found[product_id] for product_id in charge.product_ids if product_id in found]
    await engine.grant_paid(session, charge.community_id, charge.user_id, charge.id, products, now)
    await events.completed(session, changed, now)
    return "succeeded"


async def _refund_settled(
    session: AsyncSession, refund: domain.Refund, status: str, now: datetime
) -> str:
    if refund.state is not RefundState.PENDING or status not in ("succeeded", "failed"):
        return "stale"
    charges = ChargeRepository(session)
    charge = await charges.get(refund.charge_id, for_update=True)
    assert charge is not None  # a refund's charge is its foreign key
    if status == "failed":
        await RefundRepository(session).save(domain.replace_state(refund, RefundState.FAILED, now))
        return "refund failed"
    await RefundRepository(session).save(domain.replace_state(refund, RefundState.SUCCEEDED, now))
    await Ledger(session).append(
        ledger.refund_paid(
            refund.community_id, charge.id, refund.id, refund.currency, refund.amount_minor, now
        )
    )
    if charge.refunded_minor + refund.amount_minor >= charge.amount_minor:
        await engine.revoke_paid(session, charge.id, now)
    await events.refunded(session, refund, charge, now)
    return "refunded"
