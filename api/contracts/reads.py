"""Reading contracts: an order as its caller may see it, lists, the timeline, the document
and the evidence bundle; what the public table and verification may know of contracts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.completion import PASSWORD_PURPOSE
from api.contracts.keystore import Keystore
from api.contracts.models import (
    CONTRACT_STATUSES,
    LIVE_STATUSES,
    CancellationSignature,
    CancellationStatus,
    ContractCancellation,
    ContractEvent,
    ContractKind,
    ContractOrder,
    ContractParty,
    ContractSignature,
    OrderStatus,
)
from api.contracts.pdfs import finished_pdf, timestamps_of
from api.contracts.people import same_person
from api.contracts.queries import (
    chained_events,
    effective_status,
    get_order,
    my_party,
    order_answer,
    parties_of,
    past_deadline,
    staff_may_touch,
    unit_answer,
)
from api.contracts.terms import (
    ContractTerms,
    terms_of,
)
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.versions import contract_scope
from api.identity.models import StaffRole
from api.identity.principal import Principal
from api.identity.verification import citizen_identity
from api.outbox import service as outbox
from signing.canonical import load_canonical_document
from signing.evidence import build_bundle
from signing.pii import mask_name
from signing.signatures import SignatureRecord


async def order_for(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, now: datetime
) -> tuple[ContractOrder, schemas.OrderAnswer]:
    """An order as its caller may see it: staff of its company, a regulator, or a bound
    party."""
    order = await get_order(session, order_id)
    if principal.staff_id is not None:
        if principal.role is not StaffRole.regulator:
            staff_may_touch(principal, order)
        return order, await order_answer(session, order, now)
    party = await my_party(session, principal, order)
    return order, await order_answer(session, order, now, my_party_id=party.id)


async def list_orders(
    session: AsyncSession,
    principal: Principal,
    *,
    now: datetime,
    status: OrderStatus | None = None,
    project_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> schemas.OrderList:
    query = select(ContractOrder)
    if principal.role is StaffRole.regulator:
        pass  # regulators oversee every company's contracts
    elif principal.staff_id is not None:
        query = query.where(ContractOrder.company_id == principal.company_id)
    else:
        query = query.where(
            ContractOrder.id.in_(
                select(ContractParty.order_id).where(
                    ContractParty.citizen_id == principal.citizen_id
                )
            )
        )
    if status is not None:
        if status is OrderStatus.expired:
            query = query.where(
                or_(ContractOrder.status == OrderStatus.expired, past_deadline(now))
            )
        elif status in (OrderStatus.draft, OrderStatus.awaiting_signatures):
            query = query.where(ContractOrder.status == status, ~past_deadline(now))
        else:
            query = query.where(ContractOrder.status == status)
    if project_id is not None:
        query = query.where(ContractOrder.project_id == project_id)
    if unit_id is not None:
        query = query.where(ContractOrder.unit_id == unit_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    orders = list(
        await session.scalars(
            # Both descending: ix_contract_orders_company_created read backwards.
            query.order_by(ContractOrder.created_at.desc(), ContractOrder.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return schemas.OrderList(
        items=[await order_answer(session, o, now) for o in orders], total=total
    )


async def events(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, now: datetime
) -> schemas.EventList:
    await order_for(session, principal, order_id, now=now)
    rows = await session.scalars(
        select(ContractEvent.event_json)
        .where(ContractEvent.order_id == order_id)
        .order_by(ContractEvent.seq)
    )
    out = []
    for raw in rows:
        event = json.loads(raw)
        payload = event["payload"]
        out.append(
            schemas.EventAnswer(
                index=event["index"],
                type=payload["type"],
                actor=payload["actor"],
                at=datetime.fromisoformat(payload["at"].replace("Z", "+00:00")),
                detail=payload["detail"],
                hash=event["hash"],
            )
        )
    return schemas.EventList(events=out, notifications=await outbox.contract_log(session, order_id))


async def document(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, now: datetime
) -> schemas.DocumentAnswer:
    order, _ = await order_for(session, principal, order_id, now=now)
    if order.document_json is None or order.document_hash is None:
        raise DomainError("document_not_issued", "合同文本尚未生成。")
    return schemas.DocumentAnswer(
        document_hash=order.document_hash,
        canonical_json=order.document_json,
        document=json.loads(order.document_json),
    )


async def scene_of(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, now: datetime
) -> str:
    order = await get_order(session, order_id)
    if order.kind is ContractKind.resale:
        if principal.citizen_id is None or principal.citizen_id != order.seller_citizen_id:
            raise DomainError("not_order_creator", "只有创建该合同订单的出卖人可以出示二维码。")
    else:
        staff_may_touch(principal, order)
    status = effective_status(order, now)
    if order.scene is None or status is OrderStatus.draft:
        raise DomainError("order_not_issued", "合同订单尚未生成签约二维码。")
    if status is OrderStatus.expired:
        raise DomainError("order_expired", "该合同订单已过期，请联系销售人员重新生成。")
    if status is OrderStatus.voided:
        raise DomainError("order_voided", "该合同订单已作废。")
    if status is not OrderStatus.awaiting_signatures:
        raise DomainError("order_not_signable", "该合同订单已不在签约阶段。")
    return order.scene


async def evidence(
    session: AsyncSession,
    keystore: Keystore,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
) -> dict[str, Any]:
    order, _ = await order_for(session, principal, order_id, now=now)
    if order.contract_number is None or order.document_json is None:
        raise DomainError("evidence_not_ready", "合同尚未签订完成，暂无证据包。")
    rows = (
        await session.execute(
            select(ContractSignature.signer_key, ContractSignature.record_json)
            .where(ContractSignature.order_id == order.id)
            .order_by(ContractSignature.signed_at, ContractSignature.role)
        )
    ).all()
    records = [SignatureRecord.from_dict(json.loads(raw)) for _, raw in rows]
    tokens = await timestamps_of(session, order.id)
    chained = await chained_events(session, order.id)
    ca = await keystore.ca(now)
    return build_bundle(
        ca,
        load_canonical_document(order.document_json),
        str(order.id),
        records,
        chained,
        now,
        timestamps=[tokens.get(key) for key, _ in rows],
    )


async def signed_pdf(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, now: datetime
) -> tuple[str, bytes]:
    """The finished PDF for a party or the company's staff, with its file name."""
    order, _ = await order_for(session, principal, order_id, now=now)
    pdf = await finished_pdf(session, order)
    return f"{order.contract_number}.pdf", pdf


@dataclass(frozen=True)
class GenuineContract:
    """What anyone holding a contract's number and password may learn of it: no ID
    numbers or phones, names masked."""

    contract_number: str
    filing_number: str | None
    filed_at: datetime | None
    status: OrderStatus
    unit_id: uuid.UUID
    terms: ContractTerms
    parties: list[tuple[str, str]]  # (role, masked name)
    document_hash: str | None
    signatures: list[tuple[str, str, datetime]]  # (role, masked name or company, when)
    completed_at: datetime | None


async def genuine_contract(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    number: str,
    password: str,
    pin: Callable[[Iterable[str]], Awaitable[None]] | None = None,
) -> GenuineContract | None:
    """The contract this number (its contract number or its filing number) and password
    open; None alike for an unknown number and a wrong password (no oracle for which
    numbers exist). ``pin`` (a read cache's) is given the contract's version scope before
    its data is read (a number, once given, always names the same order)."""
    by_number = or_(ContractOrder.contract_number == number, ContractOrder.filing_number == number)
    if pin is not None:
        order_id = await session.scalar(select(ContractOrder.id).where(by_number))
        if order_id is None:
            return None
        await pin((contract_scope(order_id),))
    order = await session.scalar(select(ContractOrder).where(by_number))
    if (
        order is None
        or order.password_hash is None
        or not keys.credential_matches(PASSWORD_PURPOSE, password, order.password_hash)
    ):
        return None
    terms = terms_of(order)
    parties = await parties_of(session, order.id)
    signatures = (
        await session.execute(
            select(
                ContractSignature.role, ContractSignature.signer_key, ContractSignature.signed_at
            )
            .where(ContractSignature.order_id == order.id)
            .order_by(ContractSignature.signed_at)
        )
    ).all()
    names = {str(p.id): mask_name(p.name) for p in parties}
    assert order.contract_number is not None
    return GenuineContract(
        contract_number=order.contract_number,
        filing_number=order.filing_number,
        filed_at=order.filed_at,
        status=order.status,
        unit_id=order.unit_id,
        terms=terms,
        parties=[(p.role, mask_name(p.name)) for p in parties],
        document_hash=order.document_hash,
        signatures=[
            (role, names.get(key, terms.seller_label), signed_at)
            for role, key, signed_at in signatures
        ],
        completed_at=order.completed_at,
    )


async def unit_contract_statuses(
    session: AsyncSession,
    *,
    now: datetime,
    building_id: uuid.UUID | None = None,
    project_ids: list[uuid.UUID] | None = None,
) -> dict[uuid.UUID, str]:
    """For the public building table: unit id -> "signing" (a live order not yet a
    contract), "signed" (a contract) or "filed" (a contract the regulator filed)."""
    query = select(ContractOrder.unit_id, ContractOrder.status, ContractOrder.filing_number).where(
        ContractOrder.status.in_(LIVE_STATUSES), ~past_deadline(now)
    )
    if building_id is not None:
        query = query.where(ContractOrder.building_id == building_id)
    elif project_ids is not None:
        query = query.where(ContractOrder.project_id.in_(project_ids))
    statuses: dict[uuid.UUID, str] = {}
    for unit_id, status, filing_number in await session.execute(query):
        if status not in CONTRACT_STATUSES:
            statuses[unit_id] = "signing"
        else:
            statuses[unit_id] = "filed" if filing_number else "signed"
    return statuses


async def live_order_on(
    session: AsyncSession, unit_id: uuid.UUID
) -> tuple[OrderStatus, str | None] | None:
    """The status and scene of the order holding a unit, or None when the unit is free."""
    row = (
        await session.execute(
            select(ContractOrder.status, ContractOrder.scene).where(
                ContractOrder.unit_id == unit_id, ContractOrder.status.in_(LIVE_STATUSES)
            )
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def signature_tasks(
    session: AsyncSession, principal: Principal, *, now: datetime
) -> schemas.SignatureTasks:
    """我的签署 (seed 001): the orders and cancellations waiting for my signature, found by
    my verified identity (document and name), so I can open them without a QR code."""
    assert principal.citizen_id is not None
    citizen = await citizen_identity(session, principal.citizen_id)
    if citizen is None or citizen.id_number_index is None:
        return schemas.SignatureTasks(items=[])
    mine = list(
        await session.scalars(
            select(ContractParty).where(ContractParty.id_number_index == citizen.id_number_index)
        )
    )
    parties = {p.order_id: p for p in mine if same_person(p.name, citizen.name)}
    if not parties:
        return schemas.SignatureTasks(items=[])
    waiting = await session.scalars(
        select(ContractOrder)
        .where(
            ContractOrder.id.in_(parties),
            ContractOrder.status == OrderStatus.awaiting_signatures,
            ~past_deadline(now),
        )
        .order_by(ContractOrder.expires_at)
    )
    items = [
        _task(order, parties[order.id], scene=order.scene, cancellation_id=None)
        for order in waiting
        if parties[order.id].signed_at is None and order.scene is not None
    ]
    signed = select(CancellationSignature.cancellation_id).where(
        CancellationSignature.signer_key.in_([str(p.id) for p in parties.values()])
    )
    cancellations = await session.execute(
        select(ContractCancellation, ContractOrder)
        .join(ContractOrder, ContractOrder.id == ContractCancellation.order_id)
        .where(
            ContractCancellation.order_id.in_(parties),
            ContractCancellation.status == CancellationStatus.awaiting_signatures,
            ContractCancellation.id.not_in(signed),
        )
        .order_by(ContractCancellation.created_at)
    )
    items += [
        _task(order, parties[order.id], scene=c.scene, cancellation_id=c.id)
        for c, order in cancellations
    ]
    return schemas.SignatureTasks(items=items)


def _task(
    order: ContractOrder,
    party: ContractParty,
    *,
    scene: str,
    cancellation_id: uuid.UUID | None,
) -> schemas.SignatureTask:
    unit = terms_of(order).unit
    return schemas.SignatureTask(
        kind="cancellation" if cancellation_id else "contract",
        order_id=order.id,
        cancellation_id=cancellation_id,
        scene=scene,
        role=party.role,
        unit=unit_answer(order.unit_id, unit),
        contract_kind=order.kind,
        contract_number=order.contract_number,
        expires_at=order.expires_at if cancellation_id is None else None,
    )
