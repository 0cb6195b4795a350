"""Contract orders from the sales office's side: create a draft for a unit (checked against
the register; at most one live order per unit, enforced by a partial unique index), issue
it (the document frozen, the QR scene made, buyers invited by SMS), void it, and expire
orders at the end of the next natural day.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import documents, schemas
from api.contracts.acts import seal_company
from api.contracts.models import (
    LIVE_STATUSES,
    ContractKind,
    ContractOrder,
    OrderStatus,
)
from api.contracts.people import Person, add_parties, checked_buyers, party_terms
from api.contracts.policy import ContractPolicy
from api.contracts.queries import (
    actor_of,
    check_unit_saleable,
    creator_may_act,
    end_order,
    expire,
    expire_if_due,
    get_order,
    hand_to_escrow,
    is_contract,
    message_parties,
    next_number,
    order_answer,
    parties_of,
    past_deadline,
    record_event,
    refuse_ended,
    staff_actor,
)
from api.contracts.terms import (
    PAYMENT_LABELS,
    TEMPLATES,
    ContractTerms,
    DeveloperTerms,
    SealTerms,
    UnitTerms,
    terms_of,
)
from api.core.clock import SHANGHAI, business_date, end_of_next_natural_day
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.escrow.accounts import approved_account_for_project
from api.escrow.models import NoticeKind
from api.identity.principal import Principal
from api.identity.staff import staff_project_ids
from api.register.queries import UnitContext, unit_context
from signing.canonical import format_utc
from signing.qr import new_scene


def _format_expiry(expires_at: datetime) -> str:
    local = (expires_at - timedelta(seconds=1)).astimezone(SHANGHAI)
    return f"{local.month}月{local.day}日 24:00"


def unit_terms(unit: UnitContext) -> UnitTerms:
    """The flat as a contract names it, from the register."""
    return UnitTerms(
        project=unit.project_name,
        building=unit.building_name,
        address=unit.building_address,
        unit=unit.unit_label,
        room_no=unit.room_no,
        use=unit.use,
        building_area_units=unit.building_area,
        inner_area_units=unit.inner_area,
    )


def check_money_and_dates(
    *, price_fen: int, deposit_fen: int, down_payment_fen: int, delivery: date, today: date
) -> None:
    if deposit_fen + down_payment_fen > price_fen:
        raise DomainError("amounts_invalid", "定金与首付款之和不能超过合同总价。")
    if delivery < today:
        raise DomainError("delivery_date_invalid", "交付日期不能早于今天。")


def _new_terms(
    keys: ServiceKeys, unit: UnitContext, data: schemas.NewOrder, buyers: list[Person]
) -> ContractTerms:
    return ContractTerms(
        contract_kind=data.kind.value,
        title=TEMPLATES[data.template],
        unit=unit_terms(unit),
        developer=DeveloperTerms(name=unit.company_name, credit_code=unit.company_uscc),
        price_fen=data.price_fen,
        payment_method=data.payment_method.value,
        payment_method_label=PAYMENT_LABELS[data.payment_method],
        deposit_fen=data.deposit_fen,
        down_payment_fen=data.down_payment_fen,
        delivery_date=data.delivery_date.isoformat(),
        parties=[
            *(party_terms(keys, b) for b in buyers),
            SealTerms(name=unit.company_name, credit_code=unit.company_uscc),
        ],
    )


async def _check_unit_free(
    session: AsyncSession, unit: UnitContext, kind: ContractKind, *, now: datetime
) -> None:
    await check_unit_saleable(session, unit.unit_id, kind, today=business_date(now))
    # Presale money must go into a supervised account; checked now, not at the seal, so a
    # contract never completes with nowhere to pay.
    if kind is ContractKind.presale and (
        await approved_account_for_project(session, unit.project_id) is None
    ):
        raise DomainError(
            "supervised_account_missing", "该项目尚无经审核的预售资金监管账户，不能预售签约。"
        )
    await expire_due_orders(session, now, unit_id=unit.unit_id)
    if await session.scalar(
        select(ContractOrder.id).where(
            ContractOrder.unit_id == unit.unit_id, ContractOrder.status.in_(LIVE_STATUSES)
        )
    ):
        raise DomainError("unit_unavailable", "该户室已有未完成的合同订单或已签约。")


async def create_order(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    data: schemas.NewOrder,
    *,
    now: datetime,
) -> schemas.OrderAnswer:
    assert principal.staff_id is not None
    if data.template not in TEMPLATES:
        raise DomainError("template_unknown", "合同模板不存在。", templates=sorted(TEMPLATES))
    unit = await unit_context(session, data.unit_id)
    if unit is None:
        raise DomainError("unit_not_found", "未找到该户室。")
    if unit.company_id != principal.company_id or unit.project_id not in set(
        await staff_project_ids(session, principal.staff_id)
    ):
        raise DomainError("project_not_assigned", "您未被分配该项目，不能为其户室签约。")
    check_money_and_dates(
        price_fen=data.price_fen,
        deposit_fen=data.deposit_fen,
        down_payment_fen=data.down_payment_fen,
        delivery=data.delivery_date,
        today=business_date(now),
    )
    buyers = checked_buyers(data.buyers, today=business_date(now))
    seal_company(unit.company_name, unit.company_uscc)
    await _check_unit_free(session, unit, data.kind, now=now)

    order = ContractOrder(
        company_id=unit.company_id,
        project_id=unit.project_id,
        building_id=unit.building_id,
        unit_id=unit.unit_id,
        agent_id=principal.staff_id,
        kind=data.kind,
        status=OrderStatus.draft,
        price_fen=data.price_fen,
        payment_method=data.payment_method,
        deposit_fen=data.deposit_fen,
        down_payment_fen=data.down_payment_fen,
        delivery_date=data.delivery_date,
        template_id=data.template,
        template_version=documents.current_version(data.template),
        terms_json=_new_terms(keys, unit, data, buyers).to_json(),
        end_reason="",
        created_at=now,
        updated_at=now,
    )
    session.add(order)
    try:
        await session.flush()
    except IntegrityError:
        raise DomainError("unit_unavailable", "该户室已有未完成的合同订单或已签约。") from None
    parties = add_parties(session, keys, order, buyers)
    await session.flush()
    await record_event(
        session,
        order,
        "created",
        actor=await staff_actor(session, principal),
        now=now,
        detail={"unit": unit.room_no, "buyers": len(parties), "price_fen": data.price_fen},
    )
    return await order_answer(session, order, now, parties=parties)


def scan_link(public_base_url: str, scene: str) -> str:
    """What an order's QR code and its invitation SMS carry: the mini program's scan page
    for the order's scene (the one spelling of it; the page reads nothing else)."""
    return f"{public_base_url.rstrip('/')}/miniapp/#/scan/{scene}"


async def issue_order(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
    policy: ContractPolicy,
) -> schemas.Issued:
    order = await get_order(session, order_id, lock=True)
    await creator_may_act(session, principal, order)
    await expire_if_due(session, order, now)
    await check_unit_saleable(session, order.unit_id, order.kind, today=business_date(now))
    if order.status is not OrderStatus.draft:
        raise DomainError(
            "order_not_draft",
            "只有草稿状态的合同订单可以生成签约二维码。",
            order_status=order.status.value,
        )
    # The one way a document is frozen: the template's text rendered from the terms.
    document = documents.freeze(order.template_id, terms_of(order), version=order.template_version)
    order.document_json = document.canonical_text
    order.document_hash = document.document_hash
    order.scene = new_scene()
    order.issued_at = now
    # A resale's deadline runs from its creation (seed 004), a new home's from the issue.
    order.expires_at = order.expires_at or end_of_next_natural_day(now)
    order.status = OrderStatus.awaiting_signatures
    order.updated_at = now
    await session.flush()
    await record_event(
        session,
        order,
        "issued",
        actor=await actor_of(session, principal),
        now=now,
        detail={
            "document_hash": document.document_hash,
            "expires_at": format_utc(order.expires_at),
        },
    )
    base = policy.public_base_url.rstrip("/")
    link = scan_link(policy.public_base_url, order.scene)
    await message_parties(
        session,
        keys,
        order,
        await parties_of(session, order.id),
        template="sign_invitation",
        params={"link": link, "expires_at": _format_expiry(order.expires_at)},
        event="invite",
        now=now,
    )
    # The city-wide series' row stays locked until the commit, so it is taken last: issues
    # across the city wait on each other for the end of a request, not all of it (launch
    # day on PostgreSQL: 56 of 60 samples of waiting statements were for this row before,
    # 4 after).
    order.business_number = await next_number(session, f"YW{business_date(now).year}")
    if policy.deposit_before_signing and order.kind is not ContractKind.resale:
        # Seed 001: the deposit notice comes first; buyers sign once it is paid.
        await hand_to_escrow(session, keys, order, kinds=(NoticeKind.deposit,), now=now)
    path = f"{base}/api/v1/contracts/{order.id}"
    return schemas.Issued(
        order=await order_answer(session, order, now),
        scene=order.scene,
        scan_url=link,
        qr_png_url=f"{path}/qr.png",
        qr_svg_url=f"{path}/qr.svg",
        expires_at=order.expires_at,
    )


async def void_order(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, reason: str, now: datetime
) -> schemas.OrderAnswer:
    order = await get_order(session, order_id, lock=True)
    await creator_may_act(session, principal, order)
    await expire_if_due(session, order, now)
    refuse_ended(order)
    if is_contract(order):
        raise DomainError("order_completed", "合同已签订，不能作废；请办理退房。")
    await end_order(session, order, OrderStatus.voided, reason=reason.strip(), now=now)
    await record_event(
        session,
        order,
        "voided",
        actor=await actor_of(session, principal),
        now=now,
        detail={"reason": reason.strip()},
    )
    return await order_answer(session, order, now)


async def expire_due_orders(
    session: AsyncSession, now: datetime, *, unit_id: uuid.UUID | None = None
) -> int:
    """Expire every open order past its expiry (the sweep); returns how many."""
    query = (
        select(ContractOrder)
        .where(past_deadline(now))
        .order_by(ContractOrder.created_at)
        .limit(500)
        .with_for_update(skip_locked=True)
    )
    if unit_id is not None:
        query = query.where(ContractOrder.unit_id == unit_id)
    orders = list(await session.scalars(query))
    for order in orders:
        await expire(session, order, now)
    return len(orders)


def expiry_sweep(database: Any, clock: Any) -> Any:
    """The periodic job for the worker loop: expire overdue orders in a short transaction."""

    async def expire_overdue_orders() -> int:
        async with database.writer() as session, session.begin():
            return await expire_due_orders(session, clock.now())

    return expire_overdue_orders
