"""Delivery receipts of the SMS provider (the handset's report), recorded in the delivery
log: from the provider's callback, by the provider's message id or by ours."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.outbox.models import DeliveryAttempt, OutboxMessage
from notifications.sms import SmsStatus

MAX_RECEIPTS = 1000  # one callback's worth; providers batch far fewer


def _our_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


async def record_receipts(
    session: AsyncSession, receipts: list[SmsStatus], *, now: datetime
) -> int:
    """Record each receipt on its message (once per outcome); returns how many matched."""
    matched = 0
    for receipt in receipts[:MAX_RECEIPTS]:
        if receipt.state not in ("delivered", "failed"):
            continue
        ours = _our_id(receipt.request_id)
        conditions = [OutboxMessage.id == ours] if ours is not None else []
        if receipt.provider_id:
            conditions.append(OutboxMessage.provider_id == receipt.provider_id[:100])
        if not conditions:
            continue
        message = await session.scalar(select(OutboxMessage).where(or_(*conditions)).limit(1))
        if message is None:
            continue
        matched += 1
        if message.delivery_status == receipt.state:
            continue  # the provider pushes again until it is answered: record once
        message.delivery_status = receipt.state
        message.delivered_at = receipt.at or now
        session.add(
            DeliveryAttempt(
                message_id=message.id,
                attempt=message.attempts,
                worker="receipt",
                channel="sms",
                outcome="delivered" if receipt.state == "delivered" else "undelivered",
                error_code=(receipt.code or None) and receipt.code[:64],
                detail=receipt.detail[:500] or None,
                at=now,
            )
        )
    await session.flush()
    return matched
