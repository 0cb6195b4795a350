"""Contract orders from the sales office's side: create a draft for a unit (checked against
the register; at most one live order per unit, enforced by a partial unique index), issue
it (the document frozen, the QR scene made, buyers invited by SMS), void it, and expire
orders at the end of the next natural day.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import documents, schemas
from api.contracts.models import (
    LIVE_STATUSES,
    ContractKind,
    ContractOrder,
    ContractParty,
    OrderStatus,
)
from api.contracts.queries import (
    OPEN_STATUSES,
    PARTY_ID_FIELD,
    agent_may_act,
    check_unit_saleable,
    expire,
    expire_if_due,
    get_order,
    message_parties,
    order_answer,
    parties_of,
    record_event,
    refuse_ended,
    staff_actor,
)
from api.contracts.terms import (
    PAYMENT_LABELS,
    TEMPLATES,
    BuyerTerms,
    ContractTerms,
    DeveloperTerms,
    SealTerms,
    UnitTerms,
    terms_of,
)
from api.core.clock import SHANGHAI, business_date, end_of_next_natural_day
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.validators import normalize_phone, resident_id_problem
from api.escrow.accounts import approved_account_for_project
from api.identity.principal import Principal
from api.identity.staff import staff_project_ids
from api.register.queries import UnitContext, unit_context
from signing.ca import signer_id_hash
from signing.canonical import format_utc
from signing.pii import mask_id_number, normalize_id_number
from signing.qr import new_scene


def _format_expiry(expires_at: datetime) -> str:
    local = (expires_at - timedelta(seconds=1)).astimezone(SHANGHAI)
    return f"{local.month}月{local.day}日 24:00"


def _share(raw: str) -> Fraction:
    text = raw.strip()
    try:
        share = Fraction(text[:-1]) / 100 if text.endswith("%") else Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise DomainError(
            "share_invalid", f"共有份额 {raw} 格式不正确，例如 1/2 或 50%。"
        ) from None
    if not 0 < share <= 1:
        raise DomainError("share_invalid", f"共有份额 {raw} 须大于 0 且不超过 1。")
    return share


@dataclass(frozen=True)
class _Buyer:
    """A buyer as the sales office typed them, checked and normalised."""

    name: str
    id_number: str
    phone: str
    share: str


def _checked_buyers(buyers: list[schemas.BuyerIn], *, today: date) -> list[_Buyer]:
    """Valid ID numbers, no one twice, and shares that add up to 1 when several co-own."""
    checked: list[_Buyer] = []
    for position, buyer in enumerate(buyers):
        id_number = normalize_id_number(buyer.id_number)
        problem = resident_id_problem(id_number, today=today)
        if problem is not None:
            raise DomainError(
                f"id_number_{problem}",
                f"买受人 {buyer.name} 的身份证号码不正确。",
                buyer=position,
            )
        if any(b.id_number == id_number for b in checked):
            raise DomainError("buyers_duplicate", "同一买受人不能重复填写。", buyer=position)
        checked.append(
            _Buyer(buyer.name.strip(), id_number, normalize_phone(buyer.phone), buyer.share.strip())
        )
    if len(checked) > 1:
        if any(not b.share for b in checked):
            raise DomainError("share_required", "多位买受人共有时须填写各自的共有份额。")
        if sum(_share(b.share) for b in checked) != 1:
            raise DomainError("shares_invalid", "各买受人的共有份额之和须为 1（100%）。")
    return checked


def _new_terms(
    keys: ServiceKeys, unit: UnitContext, data: schemas.NewOrder, buyers: list[_Buyer]
) -> ContractTerms:
    return ContractTerms(
        contract_kind=data.kind.value,
        title=TEMPLATES[data.template],
        unit=UnitTerms(
            project=unit.project_name,
            building=unit.building_name,
            address=unit.building_address,
            unit=unit.unit_label,
            room_no=unit.room_no,
            use=unit.use,
            building_area_units=unit.building_area,
            inner_area_units=unit.inner_area,
        ),
        developer=DeveloperTerms(name=unit.company_name, credit_code=unit.company_uscc),
        price_fen=data.price_fen,
        payment_method=data.payment_method.value,
        payment_method_label=PAYMENT_LABELS[data.payment_method],
        deposit_fen=data.deposit_fen,
        down_payment_fen=data.down_payment_fen,
        delivery_date=data.delivery_date.isoformat(),
        parties=[
            *(
                BuyerTerms(
                    name=b.name,
                    id_hash=signer_id_hash(b.id_number, keys.signer_id),
                    id_number_masked=mask_id_number(b.id_number),
                    share=b.share,
                )
                for b in buyers
            ),
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
    if data.deposit_fen + data.down_payment_fen > data.price_fen:
        raise DomainError("amounts_invalid", "定金与首付款之和不能超过合同总价。")
    if data.delivery_date < business_date(now):
        raise DomainError("delivery_date_invalid", "交付日期不能早于今天。")
    buyers = _checked_buyers(data.buyers, today=business_date(now))
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
    parties = []
    for position, buyer in enumerate(buyers):
        protected = keys.protect_id_number(buyer.id_number, field=PARTY_ID_FIELD)
        party = ContractParty(
            order_id=order.id,
            position=position,
            role="buyer",
            name=buyer.name,
            id_number_encrypted=protected.encrypted,
            id_number_index=protected.index,
            id_number_masked=protected.masked,
            phone=buyer.phone,
            share=buyer.share,
        )
        session.add(party)
        parties.append(party)
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
    public_base_url: str,
) -> schemas.Issued:
    order = await get_order(session, order_id, lock=True)
    await agent_may_act(session, principal, order)
    await check_unit_saleable(session, order.unit_id, order.kind, today=business_date(now))
    if order.status is not OrderStatus.draft:
        raise DomainError(
            "order_not_draft",
            "只有草稿状态的合同订单可以生成签约二维码。",
            order_status=order.status.value,
        )
    # The one way a document is frozen: the template's text rendered from the terms.
    document = documents.freeze(
        order.template_id, terms_of(order), version=order.template_version
    )
    order.document_json = document.canonical_text
    order.document_hash = document.document_hash
    order.scene = new_scene()
    order.issued_at = now
    order.expires_at = end_of_next_natural_day(now)
    order.status = OrderStatus.awaiting_signatures
    order.updated_at = now
    await session.flush()
    await record_event(
        session,
        order,
        "issued",
        actor=await staff_actor(session, principal),
        now=now,
        detail={
            "document_hash": document.document_hash,
            "expires_at": format_utc(order.expires_at),
        },
    )
    base = public_base_url.rstrip("/")
    link = scan_link(public_base_url, order.scene)
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
    await agent_may_act(session, principal, order)
    await expire_if_due(session, order, now)
    refuse_ended(order)
    if order.status is OrderStatus.signed:
        raise DomainError("order_completed", "合同已签订，不能作废；请办理退房。")
    order.status = OrderStatus.voided
    order.ended_at = now
    order.end_reason = reason.strip()
    order.updated_at = now
    await record_event(
        session,
        order,
        "voided",
        actor=await staff_actor(session, principal),
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
        .where(ContractOrder.status.in_(OPEN_STATUSES), ContractOrder.expires_at <= now)
        .order_by(ContractOrder.expires_at)
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
