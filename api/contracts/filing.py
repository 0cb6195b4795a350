"""Filing (备案): a sealed contract told to the government. In "review" mode it waits for a
regulator (待备案), who files it (已备案, with a filing number) or sends it back with a reason
(备案退回), after which the company resubmits it with a note or cancels it; in "auto" mode
(网签即备案) it is filed at the seal. Every decision is in the timeline, and the buyers get
an SMS.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.models import ContractEvent, ContractOrder, OrderStatus
from api.contracts.policy import ContractPolicy
from api.contracts.queries import (
    SYSTEM_ACTOR,
    agent_may_act,
    get_order,
    message_parties,
    next_number,
    order_answer,
    parties_of,
    record_event,
    staff_actor,
)
from api.core.clock import SHANGHAI, business_date
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.identity.models import StaffRole
from api.identity.principal import Principal

FILING_STATUSES = {
    "pending": OrderStatus.filing_pending,
    "rejected": OrderStatus.filing_rejected,
    "filed": OrderStatus.filed,
}


async def submit_for_filing(
    session: AsyncSession,
    keys: ServiceKeys,
    order: ContractOrder,
    policy: ContractPolicy,
    *,
    now: datetime,
) -> None:
    """Called when a contract is complete: it waits for a regulator, or is filed at once."""
    order.filing_submitted_at = now
    if policy.filing_mode == "auto":
        await _file(session, keys, order, actor=SYSTEM_ACTOR, now=now)
        return
    order.status = OrderStatus.filing_pending
    order.updated_at = now
    await record_event(session, order, "filing_submitted", actor=SYSTEM_ACTOR, now=now)


async def _file(
    session: AsyncSession, keys: ServiceKeys, order: ContractOrder, *, actor: str, now: datetime
) -> None:
    order.filing_number = await next_number(session, f"BA{business_date(now).year}")
    order.filed_at = now
    order.status = OrderStatus.filed
    order.updated_at = now
    await session.flush()
    await record_event(
        session, order, "filed", actor=actor, now=now, detail={"filing_number": order.filing_number}
    )
    await message_parties(
        session,
        keys,
        order,
        await parties_of(session, order.id),
        template="contract_filed",
        params={"contract_number": order.contract_number, "filing_number": order.filing_number},
        event="filed",
        now=now,
    )


async def _pending(
    session: AsyncSession, order_id: uuid.UUID, expected: OrderStatus
) -> ContractOrder:
    order = await get_order(session, order_id, lock=True)
    if order.status is not expected:
        detail = {
            OrderStatus.filing_pending: "该合同不在待备案状态。",
            OrderStatus.filing_rejected: "该合同未被退回，无需重新提交备案。",
        }[expected]
        raise DomainError("filing_not_pending", detail, order_status=order.status.value)
    return order


async def approve(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
) -> schemas.OrderAnswer:
    """A regulator files the contract: 已备案, with its filing number and time."""
    order = await _pending(session, order_id, OrderStatus.filing_pending)
    await _file(session, keys, order, actor=await staff_actor(session, principal), now=now)
    return await order_answer(session, order, now)


async def reject(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    reason: str,
    now: datetime,
) -> schemas.OrderAnswer:
    """A regulator sends the contract back (退回并注明原因); the company sees the reason."""
    if not reason.strip():
        raise DomainError("reason_required", "退回备案时须注明原因。")
    order = await _pending(session, order_id, OrderStatus.filing_pending)
    order.status = OrderStatus.filing_rejected
    order.filing_rejection_reason = reason.strip()
    order.updated_at = now
    await record_event(
        session,
        order,
        "filing_rejected",
        actor=await staff_actor(session, principal),
        now=now,
        detail={"reason": reason.strip()},
    )
    await message_parties(
        session,
        keys,
        order,
        await parties_of(session, order.id),
        template="filing_rejected",
        params={"contract_number": order.contract_number, "reason": reason.strip()},
        # Each rejection is news of its own: the event counts the rejections so far.
        event=f"filing-rejected-{await _rejections(session, order)}",
        now=now,
    )
    return await order_answer(session, order, now)


async def _rejections(session: AsyncSession, order: ContractOrder) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                ContractEvent.order_id == order.id, ContractEvent.event_type == "filing_rejected"
            )
        )
        or 0
    )


async def resubmit(
    session: AsyncSession,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    note: str,
    now: datetime,
) -> schemas.OrderAnswer:
    """The company answers a rejection: the contract waits for a regulator again."""
    order = await _pending(session, order_id, OrderStatus.filing_rejected)
    await _company_may_act(session, principal, order)
    order.status = OrderStatus.filing_pending
    order.filing_note = note.strip()
    order.filing_submitted_at = now
    order.updated_at = now
    await record_event(
        session,
        order,
        "filing_resubmitted",
        actor=await staff_actor(session, principal),
        now=now,
        detail={"note": note.strip()},
    )
    return await order_answer(session, order, now)


async def _company_may_act(
    session: AsyncSession, principal: Principal, order: ContractOrder
) -> None:
    """The company's admin, or an agent assigned to the contract's project."""
    if principal.role is StaffRole.company_admin and principal.company_id == order.company_id:
        return
    await agent_may_act(session, principal, order)


async def list_filings(
    session: AsyncSession,
    principal: Principal,
    *,
    now: datetime,
    status: str,
    project_id: uuid.UUID | None = None,
    submitted_from: date | None = None,
    submitted_to: date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> schemas.OrderList:
    """Contracts by filing state, oldest submission first (the regulator's queue): every
    company's for regulators, their own company's for staff."""
    query = select(ContractOrder).where(ContractOrder.status == FILING_STATUSES[status])
    if principal.role is not StaffRole.regulator:
        query = query.where(ContractOrder.company_id == principal.company_id)
    if project_id is not None:
        query = query.where(ContractOrder.project_id == project_id)
    if submitted_from is not None:
        start = datetime.combine(submitted_from, time.min, tzinfo=SHANGHAI)
        query = query.where(ContractOrder.filing_submitted_at >= start)
    if submitted_to is not None:
        end = datetime.combine(submitted_to, time.max, tzinfo=SHANGHAI)
        query = query.where(ContractOrder.filing_submitted_at <= end)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    orders = await session.scalars(
        query.order_by(ContractOrder.filing_submitted_at, ContractOrder.id)
        .limit(limit)
        .offset(offset)
    )
    return schemas.OrderList(
        items=[await order_answer(session, order, now) for order in orders], total=total
    )
