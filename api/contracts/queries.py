"""What every contract use case shares: finding an order and its parties, who may touch it,
its effective status (an unswept expiry applied), the hash-chained timeline, keeping a
signing act, and the order as answered to clients.

Every change of an order locks its row (``FOR UPDATE``; SQLite writers hold the database
write lock anyway) and appends a timeline event in the same transaction.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.models import (
    CONTRACT_STATUSES,
    ContractCounter,
    ContractEvent,
    ContractKind,
    ContractOrder,
    ContractParty,
    ContractSignature,
    OrderStatus,
)
from api.contracts.people import party_phone, purge_parties, seller_account
from api.contracts.terms import UnitTerms, terms_of
from api.contracts.wording import money, room_label, sms_building
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import commit_and_raise, insert_into
from api.escrow.accounts import approved_account_for_project, city_resale_account
from api.escrow.models import NoticeKind
from api.escrow.notices import NoticePayee, close_contract, hand_over, open_notice
from api.identity.models import StaffRole
from api.identity.principal import Principal
from api.identity.schemas import CodeSent
from api.identity.staff import StaffIdentity, staff_identity, staff_project_ids
from api.identity.verification import citizen_identity
from api.outbox import service as outbox
from api.register.models import PermitKind
from api.register.queries import unit_sale_facts
from signing.canonical import format_utc
from signing.event_chain import next_event
from signing.pii import mask_name, mask_phone
from signing.signatures import SignatureRecord

SYSTEM_ACTOR = "系统"
# Seed 000: a draft (临时保存) lives 30 minutes after its last change unless issued.
DRAFT_TTL = timedelta(minutes=30)


def deadline(order: ContractOrder) -> datetime | None:
    """When the order ends by itself: a new home's draft 30 minutes after its last change,
    an issued order at the end of the next natural day after its issue, a resale order at
    the end of the next natural day after its creation (seed 004), drafted or issued; one
    every party signed waits for the seal or the submission without a deadline (the
    company is reminded daily instead)."""
    if order.status is OrderStatus.draft:
        return order.expires_at or order.updated_at + DRAFT_TTL
    if order.status is OrderStatus.awaiting_signatures:
        return order.expires_at
    return None


def effective_status(order: ContractOrder, now: datetime) -> OrderStatus:
    """The status, with an unswept expiry already applied (reads do not write)."""
    ends = deadline(order)
    if ends is not None and now >= ends:
        return OrderStatus.expired
    return order.status


def past_deadline(now: datetime) -> ColumnElement[bool]:
    """SQL for ``deadline(order) <= now``: the sweep's orders, and lists' "expired"."""
    # No NULL may reach the comparisons: the negation (~) of an unknown is unknown too.
    return or_(
        ContractOrder.status.in_([OrderStatus.awaiting_signatures, OrderStatus.draft])
        & ContractOrder.expires_at.is_not(None)
        & (ContractOrder.expires_at <= now),
        (ContractOrder.status == OrderStatus.draft)
        & ContractOrder.expires_at.is_(None)
        & (ContractOrder.updated_at <= now - DRAFT_TTL),
    )


def is_contract(order: ContractOrder) -> bool:
    """Sealed and numbered: a contract, whatever filing or cancellation is doing to it."""
    return order.status in CONTRACT_STATUSES


def staff_label(staff: StaffIdentity | None) -> str:
    if staff is None:
        return SYSTEM_ACTOR
    return f"{staff.role.value}:{mask_name(staff.name)}"


async def staff_actor(session: AsyncSession, principal: Principal) -> str:
    assert principal.staff_id is not None
    return staff_label(await staff_identity(session, principal.staff_id))


async def actor_of(session: AsyncSession, principal: Principal) -> str:
    """Who acted, as the timeline names them: staff by role and masked name, a citizen
    (a resale's seller, a party) by masked name."""
    if principal.staff_id is not None:
        return await staff_actor(session, principal)
    assert principal.citizen_id is not None
    citizen = await citizen_identity(session, principal.citizen_id)
    return mask_name(citizen.name) if citizen is not None and citizen.name else "个人用户"


async def record_event(
    session: AsyncSession,
    order: ContractOrder,
    event_type: str,
    *,
    actor: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    last = await session.scalar(
        select(ContractEvent.event_json)
        .where(ContractEvent.order_id == order.id)
        .order_by(ContractEvent.seq.desc())
        .limit(1)
    )
    previous = json.loads(last) if last else None
    payload = {"type": event_type, "actor": actor, "at": format_utc(now), "detail": detail or {}}
    event = next_event(str(order.id), previous, payload)
    session.add(
        ContractEvent(
            order_id=order.id,
            seq=event["index"],
            event_type=event_type,
            event_json=json.dumps(event, ensure_ascii=False),
            created_at=now,
        )
    )
    await session.flush()


async def chained_events(session: AsyncSession, order_id: uuid.UUID) -> list[dict[str, Any]]:
    """The order's timeline as its hash chain, oldest first: what an evidence bundle holds."""
    rows = await session.scalars(
        select(ContractEvent.event_json)
        .where(ContractEvent.order_id == order_id)
        .order_by(ContractEvent.seq)
    )
    return [json.loads(raw) for raw in rows]


async def parties_of(session: AsyncSession, order_id: uuid.UUID) -> list[ContractParty]:
    return list(
        await session.scalars(
            select(ContractParty)
            .where(ContractParty.order_id == order_id)
            .order_by(ContractParty.position)
        )
    )


def unit_answer(unit_id: uuid.UUID, unit: UnitTerms) -> schemas.UnitAnswer:
    """The flat a contract names, with its label as people write it (1栋2单元603室)."""
    return schemas.UnitAnswer(
        id=unit_id,
        project=unit.project,
        building=unit.building,
        room_no=unit.room_no,
        unit=unit.unit,
        label=unit.project + room_label(unit.building, unit.unit, unit.room_no),
    )


async def order_answer(
    session: AsyncSession,
    order: ContractOrder,
    now: datetime,
    *,
    parties: list[ContractParty] | None = None,
    my_party_id: uuid.UUID | None = None,
) -> schemas.OrderAnswer:
    terms = terms_of(order)
    parties = parties if parties is not None else await parties_of(session, order.id)
    return schemas.OrderAnswer(
        id=order.id,
        status=effective_status(order, now),
        kind=order.kind,
        unit=unit_answer(order.unit_id, terms.unit),
        company=terms.seller_label,
        price_fen=order.price_fen,
        price_words=money(order.price_fen),
        payment_method=order.payment_method,
        deposit_fen=order.deposit_fen,
        down_payment_fen=order.down_payment_fen,
        delivery_date=order.delivery_date,
        template=order.template_id,
        document_hash=order.document_hash,
        scene=order.scene,
        expires_at=deadline(order),
        contract_number=order.contract_number,
        business_number=order.business_number,
        filing_number=order.filing_number,
        filing_submitted_at=order.filing_submitted_at,
        filed_at=order.filed_at,
        filing_rejection_reason=order.filing_rejection_reason,
        filing_note=order.filing_note,
        created_at=order.created_at,
        issued_at=order.issued_at,
        completed_at=order.completed_at,
        ended_at=order.ended_at,
        end_reason=order.end_reason,
        parties=[
            schemas.PartyAnswer(
                id=p.id,
                role=p.role,
                name=p.name,
                id_number_masked=p.id_number_masked,
                phone_masked=p.phone_masked,
                share=p.share,
                bound=p.citizen_id is not None,
                signed_at=p.signed_at,
                declined_at=p.declined_at,
            )
            for p in parties
        ],
        my_party_id=my_party_id,
        resale=terms.resale,
        transfer_registered_at=order.transfer_registered_at,
    )


async def get_order(
    session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False
) -> ContractOrder:
    query = select(ContractOrder).where(ContractOrder.id == order_id)
    if lock:
        query = query.with_for_update()
    order = await session.scalar(query)
    if order is None:
        raise DomainError.not_found("合同订单")
    return order


async def end_order(
    session: AsyncSession,
    order: ContractOrder,
    status: OrderStatus,
    *,
    reason: str,
    now: datetime,
) -> None:
    """An order ends (expired, voided, declined, cancelled): its unit is free again, and
    whatever it put in supervision (a deposit paid before signing, the money of a
    cancelled contract) is refunded to the buyers through the ledger."""
    order.status = status
    order.ended_at = now
    order.end_reason = reason[:200]
    order.updated_at = now
    await session.flush()
    await close_contract(session, order.id, now=now)


async def expire(session: AsyncSession, order: ContractOrder, now: datetime) -> None:
    ends = deadline(order) or now
    drafted = order.status is OrderStatus.draft and order.kind is not ContractKind.resale
    await end_order(
        session,
        order,
        OrderStatus.expired,
        reason="draft_discarded" if drafted else "expired",
        now=now,
    )
    await record_event(
        session,
        order,
        "draft_discarded" if drafted else "expired",
        actor=SYSTEM_ACTOR,
        now=now,
        detail={"expires_at": format_utc(ends)},
    )
    if order.kind is ContractKind.resale:
        await purge_parties(session, order, now=now)
        await record_event(session, order, "personal_data_purged", actor=SYSTEM_ACTOR, now=now)


async def expire_if_due(
    session: AsyncSession, order: ContractOrder, now: datetime, *, code: str = "order_expired"
) -> None:
    """On access (writers): an order past its expiry is expired now, and that is kept."""
    if order.status is not OrderStatus.expired and effective_status(order, now) is (
        OrderStatus.expired
    ):
        drafted = order.status is OrderStatus.draft and order.kind is not ContractKind.resale
        await expire(session, order, now)
        if drafted:
            problem = DomainError(
                "draft_expired", "该草稿超过 30 分钟未生成签约二维码，已失效，请重新创建。"
            )
        else:
            problem = DomainError(code, "该合同订单已过期，请联系销售人员重新生成。")
        await commit_and_raise(session, problem)


def refuse_ended(order: ContractOrder) -> None:
    if order.status is OrderStatus.expired:
        raise DomainError("order_expired", "该合同订单已过期，请联系销售人员重新生成。")
    if order.status is OrderStatus.voided:
        raise DomainError("order_voided", "该合同订单已作废。")
    if order.status is OrderStatus.cancelled:
        raise DomainError("contract_cancelled", "该合同已注销。")


async def next_number(session: AsyncSession, series: str) -> str:
    """The next number of a city-wide series (contract numbers "YS2026…", business numbers
    "YW2026…", filing numbers "BA2026…"): a counter row incremented under its lock, held
    until the caller's commit (so no number is skipped), in one statement."""
    value = await session.scalar(
        insert_into(session, ContractCounter)
        .values(name=series, value=1)
        .on_conflict_do_update(
            index_elements=[ContractCounter.name], set_={"value": ContractCounter.value + 1}
        )
        .returning(ContractCounter.value)
    )
    assert value is not None
    return f"{series}{value:08d}"


def staff_may_touch(principal: Principal, order: ContractOrder) -> None:
    if principal.company_id != order.company_id:
        raise DomainError("order_other_company", "该合同订单不属于本公司。")


async def creator_may_act(
    session: AsyncSession, principal: Principal, order: ContractOrder
) -> None:
    """Issuing and voiding change an order: the seller who made a resale order, or a sales
    agent assigned to a new home's project."""
    if order.kind is ContractKind.resale:
        if principal.citizen_id is None or principal.citizen_id != order.seller_citizen_id:
            raise DomainError("not_order_creator", "只有创建该合同订单的出卖人可以进行此操作。")
        return
    if principal.role is not StaffRole.sales_agent:
        raise DomainError(
            "role_forbidden", "当前角色无权进行此操作。", required_roles=["sales_agent"]
        )
    await agent_may_act(session, principal, order)


async def agent_may_act(session: AsyncSession, principal: Principal, order: ContractOrder) -> None:
    """A staff member acting on an order: only an agent assigned to its project may."""
    staff_may_touch(principal, order)
    assert principal.staff_id is not None
    if order.project_id not in set(await staff_project_ids(session, principal.staff_id)):
        raise DomainError("project_not_assigned", "您未被分配该项目，不能操作其合同订单。")


async def my_party(
    session: AsyncSession, principal: Principal, order: ContractOrder
) -> ContractParty:
    party = await session.scalar(
        select(ContractParty).where(
            ContractParty.order_id == order.id, ContractParty.citizen_id == principal.citizen_id
        )
    )
    if party is None:
        raise DomainError("not_a_party", "您不是该合同的签约方。")
    return party


def client_ip(raw: str | None) -> str:
    try:
        return str(ipaddress.ip_address(raw or ""))
    except ValueError:
        return "0.0.0.0"  # noqa: S104  (an unknown client address, not a bind)


async def check_unit_saleable(
    session: AsyncSession, unit_id: uuid.UUID, kind: ContractKind, *, today: date
) -> None:
    """The register's word on selling the unit today. Asked at creation, and again when
    the order is issued and sealed (submitted): a court may seize a unit, or a permit
    lapse, meanwhile. A resale needs no permit, only a title free of seizure."""
    facts = (await unit_sale_facts(session, today=today, unit_ids=[unit_id]))[unit_id]
    if kind is ContractKind.resale:
        if facts.restricted or facts.property_management:
            raise DomainError("title_restricted", "该房屋已司法查封或行政限制。")
        return
    if facts.restricted:
        raise DomainError("unit_restricted", "该户室已司法查封或行政限制。")
    if facts.property_management:
        raise DomainError("unit_not_for_sale", "该户室为物业管理用房，不能销售。")
    permit_kind = PermitKind.presale if kind is ContractKind.presale else PermitKind.spot
    if permit_kind in facts.changing_permit_kinds:  # seed 001 5.4.2
        raise DomainError(
            "permit_change_pending", "该户室所在许可证正在办理变更，变更完成前暂不能签约。"
        )
    if permit_kind not in facts.permit_kinds:
        raise DomainError("permit_not_found", "没有找到有效许可证户室信息。")


async def store_signature(
    session: AsyncSession,
    order: ContractOrder,
    signer_key: str,
    record: SignatureRecord,
    *,
    now: datetime,
    twice: DomainError,
) -> None:
    """Keep a signing act; the unique (order, signer) key refuses a second one."""
    session.add(
        ContractSignature(
            order_id=order.id,
            signer_key=signer_key,
            role=record.role.value,
            record_json=json.dumps(record.to_dict()),
            signed_at=now,
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        raise twice from None


async def message_parties(
    session: AsyncSession,
    keys: ServiceKeys,
    order: ContractOrder,
    parties: list[ContractParty],
    *,
    template: str,
    params: dict[str, Any],
    event: str,
    now: datetime,
    by_name: bool = False,
) -> None:
    """One message about ``order`` to each of its parties, once per ``event``."""
    unit = terms_of(order).unit
    await outbox.enqueue_to_parties(
        session,
        keys,
        outbox.ContractNews(
            order.id,
            order.company_id,
            unit.project,
            sms_building(unit.building, unit.unit),
            unit.room_no,
        ),
        [
            outbox.Addressee(phone, p.name, str(p.id))
            for p in parties
            if (phone := party_phone(keys, p)) is not None
        ],
        template=template,
        params=params,
        event_key=f"{order.id}:{event}",
        now=now,
        by_name=by_name,
    )


def challenge_answer(
    challenge_id: str, sent: CodeSent, *, phone: str, document_hash: str | None
) -> schemas.ChallengeAnswer:
    """A code sent for signing or sealing: where it went (masked) and what it signs."""
    assert document_hash is not None
    return schemas.ChallengeAnswer(
        challenge_id=challenge_id,
        sent=sent.sent,
        expires_in=sent.expires_in,
        resend_after=sent.resend_after,
        phone_masked=mask_phone(phone),
        document_hash=document_hash,
    )


async def hand_to_escrow(
    session: AsyncSession,
    keys: ServiceKeys,
    order: ContractOrder,
    *,
    kinds: tuple[NoticeKind, ...],
    now: datetime,
) -> None:
    """Escrow learns the order (again: the contract number and the buyers as they signed
    are new at completion) and opens the payment notices of ``kinds`` that are not open
    yet. Nothing happens without a supervised account: a new home's project may have none
    (a spot sale's money need not be supervised), a resale's parties may decline it. A
    resale's sellers hear of its money too, and escrow learns where to release it."""
    resale = order.kind is ContractKind.resale
    if resale:
        city = await city_resale_account(session) if order.funds_supervised else None
        account_id = city.id if city is not None else None
    else:
        project_account = await approved_account_for_project(session, order.project_id)
        account_id = project_account.id if project_account is not None else None
    if account_id is None:
        return
    # The issue numbers every order (YW…) before escrow can hear of it; that number, not an
    # id, is what the buyers' SMS names, so it must be one the providers take.
    assert order.business_number is not None
    unit = terms_of(order).unit
    parties = await parties_of(session, order.id)
    contract = await hand_over(
        session,
        keys,
        contract_id=order.id,
        business_number=order.business_number,
        contract_number=order.contract_number,
        project_id=order.project_id,
        company_id=order.company_id,
        buyers=[
            NoticePayee(phone=phone, name=p.name, citizen_id=p.citizen_id)
            for p in parties
            if (phone := party_phone(keys, p)) is not None
        ],
        estate=unit.project,
        building=sms_building(unit.building, unit.unit),
        room=unit.room_no,
        now=now,
        account_id=account_id,
        payee=seller_account(keys, order) if resale else None,
    )
    due = {NoticeKind.deposit: order.deposit_fen, NoticeKind.down_payment: order.down_payment_fen}
    for kind in kinds:
        await open_notice(session, contract, kind, due[kind], now=now)
