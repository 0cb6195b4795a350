"""Contract order rules: create, issue, scan, sign, seal, complete, void, decline, expire.

Every change of an order locks its row (``FOR UPDATE``; SQLite writers hold the database
write lock anyway) and appends a hash-chained audit event in the same transaction. The
database holds at most one live order per unit (a partial unique index), whatever the
code above it does. A refusal that must leave a trace (an expiry found on access, a
refused scan) is committed before it is raised, like a wrong SMS code.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any, NoReturn

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.keystore import Keystore
from api.contracts.models import (
    LIVE_STATUSES,
    ContractCounter,
    ContractEvent,
    ContractKind,
    ContractOrder,
    ContractParty,
    ContractSignature,
    OrderStatus,
)
from api.core.clock import SHANGHAI, business_date, end_of_next_natural_day
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.validators import normalize_id_number, resident_id_problem
from api.escrow import service as escrow
from api.identity import service as identity
from api.identity.models import IdentityLevel
from api.identity.service import Principal
from api.outbox import service as outbox
from api.register import service as register
from api.register.models import PermitKind
from notifications.sms import SmsChannel
from signing.ca import CertificateIssueError, Company, Signer, signer_id_hash
from signing.canonical import canonical_document, format_utc, load_canonical_document
from signing.cms import SignerRole, SigningContext
from signing.evidence import build_bundle, next_event
from signing.pii import mask_name, mask_phone
from signing.qr import is_valid_scene, new_scene
from signing.signatures import SignatureRecord, seal_sign, sign_once

TEMPLATES = {
    "gf-2014-0171": "商品房买卖合同（预售）示范文本",
    "gf-2014-0172": "商品房买卖合同（现售）示范文本",
}
TEMPLATE_VERSION = "2014.1"
PARTY_ID_FIELD = "contract_party.id_number"
PASSWORD_FIELD = "contract_party.password"  # noqa: S105  (an encryption field label)
PASSWORD_PURPOSE = "contract-password"  # noqa: S105  (a hash domain label)
SIGN_PURPOSE = "sign"
SEAL_PURPOSE = "seal"
PAYMENT_LABELS = {
    "lump_sum": "一次性付款",
    "installments": "分期付款",
    "commercial_loan": "商业贷款",
    "provident_fund_loan": "公积金贷款",
    "combined_loan": "组合贷款",
}
OPEN_STATUSES = (OrderStatus.awaiting_signatures, OrderStatus.awaiting_seal)
SYSTEM_ACTOR = "系统"


# ------------------------------------------------------------------ helpers


async def _commit_and_raise(session: AsyncSession, problem: DomainError) -> NoReturn:
    await session.commit()
    raise problem


def _terms(order: ContractOrder) -> dict[str, Any]:
    return json.loads(order.terms_json)


def effective_status(order: ContractOrder, now: datetime) -> OrderStatus:
    """The status, with an unswept expiry already applied (reads do not write)."""
    if order.status in OPEN_STATUSES and order.expires_at is not None and now >= order.expires_at:
        return OrderStatus.expired
    return order.status


def _actor_staff(staff: identity.StaffIdentity | None) -> str:
    if staff is None:
        return SYSTEM_ACTOR
    return f"{staff.role.value}:{mask_name(staff.name)}"


async def _staff_actor(session: AsyncSession, principal: Principal) -> str:
    assert principal.staff_id is not None
    return _actor_staff(await identity.staff_identity(session, principal.staff_id))


async def _add_event(
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


async def _parties(session: AsyncSession, order_id: uuid.UUID) -> list[ContractParty]:
    return list(
        await session.scalars(
            select(ContractParty)
            .where(ContractParty.order_id == order_id)
            .order_by(ContractParty.position)
        )
    )


async def _answer(
    session: AsyncSession,
    order: ContractOrder,
    now: datetime,
    *,
    parties: list[ContractParty] | None = None,
    my_party_id: uuid.UUID | None = None,
) -> schemas.OrderOut:
    terms = _terms(order)
    parties = parties if parties is not None else await _parties(session, order.id)
    return schemas.OrderOut(
        id=order.id,
        status=effective_status(order, now),
        kind=order.kind,
        unit=schemas.UnitOut(
            id=order.unit_id,
            project=terms["unit"]["project"],
            building=terms["unit"]["building"],
            room_no=terms["unit"]["room_no"],
        ),
        company=terms["developer"]["name"],
        price_fen=order.price_fen,
        payment_method=order.payment_method,
        deposit_fen=order.deposit_fen,
        down_payment_fen=order.down_payment_fen,
        delivery_date=order.delivery_date,
        template=order.template_id,
        document_hash=order.document_hash,
        scene=order.scene,
        expires_at=order.expires_at,
        contract_number=order.contract_number,
        created_at=order.created_at,
        issued_at=order.issued_at,
        completed_at=order.completed_at,
        ended_at=order.ended_at,
        end_reason=order.end_reason,
        parties=[
            schemas.PartyOut(
                id=p.id,
                role=p.role,
                name=p.name,
                id_number_masked=p.id_number_masked,
                phone_masked=mask_phone(p.phone),
                share=p.share,
                bound=p.citizen_id is not None,
                signed_at=p.signed_at,
                declined_at=p.declined_at,
            )
            for p in parties
        ],
        my_party_id=my_party_id,
    )


async def _order(
    session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False
) -> ContractOrder:
    query = select(ContractOrder).where(ContractOrder.id == order_id)
    if lock:
        query = query.with_for_update()
    order = await session.scalar(query)
    if order is None:
        raise DomainError.not_found("合同订单")
    return order


async def _expire(session: AsyncSession, order: ContractOrder, now: datetime) -> None:
    order.status = OrderStatus.expired
    order.ended_at = now
    order.end_reason = "expired"
    order.updated_at = now
    await _add_event(
        session,
        order,
        "expired",
        actor=SYSTEM_ACTOR,
        now=now,
        detail={"expires_at": format_utc(order.expires_at or now)},
    )


async def _expire_if_due(
    session: AsyncSession, order: ContractOrder, now: datetime, *, code: str = "order_expired"
) -> None:
    """On access (writers): an order past its expiry is expired now, and that is kept."""
    if order.status in OPEN_STATUSES and effective_status(order, now) is OrderStatus.expired:
        await _expire(session, order, now)
        await _commit_and_raise(
            session, DomainError(code, "该合同订单已过期，请联系销售人员重新生成。")
        )


def _refuse_ended(order: ContractOrder) -> None:
    if order.status is OrderStatus.expired:
        raise DomainError("order_expired", "该合同订单已过期，请联系销售人员重新生成。")
    if order.status is OrderStatus.voided:
        raise DomainError("order_voided", "该合同订单已作废。")


def _staff_may_touch(principal: Principal, order: ContractOrder) -> None:
    if principal.company_id != order.company_id:
        raise DomainError("order_other_company", "该合同订单不属于本公司。")


async def _agent_may_act(session: AsyncSession, principal: Principal, order: ContractOrder) -> None:
    """Issuing and voiding change an order: only an agent assigned to its project may."""
    _staff_may_touch(principal, order)
    assert principal.staff_id is not None
    if order.project_id not in set(await identity.staff_project_ids(session, principal.staff_id)):
        raise DomainError("project_not_assigned", "您未被分配该项目，不能操作其合同订单。")


async def _my_party(
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


def _client_ip(raw: str | None) -> str:
    try:
        return str(ipaddress.ip_address(raw or ""))
    except ValueError:
        return "0.0.0.0"  # noqa: S104  (an unknown client address, not a bind)


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


# ------------------------------------------------------------------ create


async def _check_unit_saleable(
    session: AsyncSession, unit_id: uuid.UUID, kind: ContractKind, *, today: date
) -> None:
    """The register's word on selling the unit today. Asked at creation, and again when
    the order is issued and sealed: a court may seize a unit, or a permit lapse, meanwhile."""
    facts = (await register.unit_sale_facts(session, today=today, unit_ids=[unit_id]))[unit_id]
    if facts.restricted:
        raise DomainError("unit_restricted", "该户室已司法查封或行政限制。")
    if facts.property_management:
        raise DomainError("unit_not_for_sale", "该户室为物业管理用房，不能销售。")
    permit_kind = PermitKind.presale if kind is ContractKind.presale else PermitKind.spot
    if permit_kind not in facts.permit_kinds:
        raise DomainError("permit_not_found", "没有找到有效许可证户室信息。")


async def create_order(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    data: schemas.NewOrder,
    *,
    now: datetime,
) -> schemas.OrderOut:
    assert principal.staff_id is not None
    if data.template not in TEMPLATES:
        raise DomainError("template_unknown", "合同模板不存在。", templates=sorted(TEMPLATES))
    unit = await register.unit_context(session, data.unit_id)
    if unit is None:
        raise DomainError("unit_not_found", "未找到该户室。")
    if unit.company_id != principal.company_id or unit.project_id not in set(
        await identity.staff_project_ids(session, principal.staff_id)
    ):
        raise DomainError("project_not_assigned", "您未被分配该项目，不能为其户室签约。")
    if data.deposit_fen + data.down_payment_fen > data.price_fen:
        raise DomainError("amounts_invalid", "定金与首付款之和不能超过合同总价。")
    today = business_date(now)
    if data.delivery_date < today:
        raise DomainError("delivery_date_invalid", "交付日期不能早于今天。")

    buyers = []
    seen: set[str] = set()
    for position, buyer in enumerate(data.buyers):
        id_number = normalize_id_number(buyer.id_number)
        problem = resident_id_problem(id_number, today=today)
        if problem is not None:
            raise DomainError(
                f"id_number_{problem}",
                f"买受人 {buyer.name} 的身份证号码不正确。",
                buyer=position,
            )
        if id_number in seen:
            raise DomainError("buyers_duplicate", "同一买受人不能重复填写。", buyer=position)
        seen.add(id_number)
        buyers.append((buyer, id_number, identity.normalize_phone(buyer.phone)))
    if len(buyers) > 1:
        if any(not b.share.strip() for b, _, _ in buyers):
            raise DomainError("share_required", "多位买受人共有时须填写各自的共有份额。")
        if sum(_share(b.share) for b, _, _ in buyers) != 1:
            raise DomainError("shares_invalid", "各买受人的共有份额之和须为 1（100%）。")

    await _check_unit_saleable(session, unit.unit_id, data.kind, today=today)
    # Presale money must go into a supervised account; checked now, not at the seal, so a
    # contract never completes with nowhere to pay.
    if data.kind is ContractKind.presale and (
        await escrow.approved_account_for_project(session, unit.project_id) is None
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

    terms = {
        "contract_kind": data.kind.value,
        "title": TEMPLATES[data.template],
        "unit": {
            "project": unit.project_name,
            "building": unit.building_name,
            "address": unit.building_address,
            "unit": unit.unit_label,
            "room_no": unit.room_no,
            "use": unit.use,
            "building_area_units": unit.building_area,
            "inner_area_units": unit.inner_area,
        },
        "developer": {"name": unit.company_name, "credit_code": unit.company_uscc},
        "price_fen": data.price_fen,
        "payment_method": data.payment_method.value,
        "payment_method_label": PAYMENT_LABELS[data.payment_method.value],
        "deposit_fen": data.deposit_fen,
        "down_payment_fen": data.down_payment_fen,
        "delivery_date": data.delivery_date.isoformat(),
        "parties": [
            *(
                {
                    "role": "buyer",
                    "name": b.name.strip(),
                    "id_hash": signer_id_hash(id_number, keys.signer_id),
                    "id_number_masked": keys.protect_id_number(
                        id_number, field=PARTY_ID_FIELD
                    ).masked,
                    "share": b.share.strip(),
                }
                for b, id_number, _ in buyers
            ),
            {"role": "seal", "name": unit.company_name, "credit_code": unit.company_uscc},
        ],
    }
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
        template_version=TEMPLATE_VERSION,
        terms_json=json.dumps(terms, ensure_ascii=False),
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
    for position, (buyer, id_number, phone) in enumerate(buyers):
        protected = keys.protect_id_number(id_number, field=PARTY_ID_FIELD)
        party = ContractParty(
            order_id=order.id,
            position=position,
            role="buyer",
            name=buyer.name.strip(),
            id_number_encrypted=protected.encrypted,
            id_number_index=protected.index,
            id_number_masked=protected.masked,
            phone=phone,
            share=buyer.share.strip(),
        )
        session.add(party)
        parties.append(party)
    await session.flush()
    await _add_event(
        session,
        order,
        "created",
        actor=await _staff_actor(session, principal),
        now=now,
        detail={"unit": unit.room_no, "buyers": len(parties), "price_fen": data.price_fen},
    )
    return await _answer(session, order, now, parties=parties)


# ------------------------------------------------------------------ issue, void, expire


async def issue_order(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
    public_base_url: str,
) -> schemas.Issued:
    order = await _order(session, order_id, lock=True)
    await _agent_may_act(session, principal, order)
    await _check_unit_saleable(session, order.unit_id, order.kind, today=business_date(now))
    if order.status is not OrderStatus.draft:
        raise DomainError(
            "order_not_draft",
            "只有草稿状态的合同订单可以生成签约二维码。",
            order_status=order.status.value,
        )
    document = canonical_document(order.template_id, order.template_version, _terms(order))
    order.document_json = document.canonical_text
    order.document_hash = document.document_hash
    order.scene = new_scene()
    order.issued_at = now
    order.expires_at = end_of_next_natural_day(now)
    order.status = OrderStatus.awaiting_signatures
    order.updated_at = now
    await session.flush()
    await _add_event(
        session,
        order,
        "issued",
        actor=await _staff_actor(session, principal),
        now=now,
        detail={
            "document_hash": document.document_hash,
            "expires_at": format_utc(order.expires_at),
        },
    )
    base = public_base_url.rstrip("/")
    link = f"{base}/miniapp/#/scan/{order.scene}"
    terms = _terms(order)
    for party in await _parties(session, order.id):
        await outbox.enqueue_to_person(
            session,
            keys,
            template="sign_invitation",
            params={
                "estate": terms["unit"]["project"],
                "building": terms["unit"]["building"],
                "room": terms["unit"]["room_no"],
                "link": link,
                "expires_at": _format_expiry(order.expires_at),
            },
            dedupe_key=f"{order.id}:invite:{party.id}",
            now=now,
            phone=party.phone,
            company_id=order.company_id,
            contract_id=order.id,
        )
    path = f"{base}/api/v1/contracts/{order.id}"
    return schemas.Issued(
        order=await _answer(session, order, now),
        scene=order.scene,
        scan_url=link,
        qr_png_url=f"{path}/qr.png",
        qr_svg_url=f"{path}/qr.svg",
        expires_at=order.expires_at,
    )


async def void_order(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, reason: str, now: datetime
) -> schemas.OrderOut:
    order = await _order(session, order_id, lock=True)
    await _agent_may_act(session, principal, order)
    await _expire_if_due(session, order, now)
    _refuse_ended(order)
    if order.status is OrderStatus.signed:
        raise DomainError("order_completed", "合同已签订，不能作废；请办理退房。")
    order.status = OrderStatus.voided
    order.ended_at = now
    order.end_reason = reason.strip()
    order.updated_at = now
    await _add_event(
        session,
        order,
        "voided",
        actor=await _staff_actor(session, principal),
        now=now,
        detail={"reason": reason.strip()},
    )
    return await _answer(session, order, now)


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
        await _expire(session, order, now)
    return len(orders)


# ------------------------------------------------------------------ reads


async def order_for(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, now: datetime
) -> tuple[ContractOrder, schemas.OrderOut]:
    """An order as its caller may see it: staff of its company or a bound party."""
    order = await _order(session, order_id)
    if principal.staff_id is not None:
        _staff_may_touch(principal, order)
        return order, await _answer(session, order, now)
    party = await _my_party(session, principal, order)
    return order, await _answer(session, order, now, my_party_id=party.id)


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
    if principal.staff_id is not None:
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
                or_(
                    ContractOrder.status == OrderStatus.expired,
                    (ContractOrder.status.in_(OPEN_STATUSES)) & (ContractOrder.expires_at <= now),
                )
            )
        elif status in OPEN_STATUSES:
            query = query.where(ContractOrder.status == status, ContractOrder.expires_at > now)
        else:
            query = query.where(ContractOrder.status == status)
    if project_id is not None:
        query = query.where(ContractOrder.project_id == project_id)
    if unit_id is not None:
        query = query.where(ContractOrder.unit_id == unit_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    orders = list(
        await session.scalars(
            query.order_by(ContractOrder.created_at.desc(), ContractOrder.id)
            .limit(limit)
            .offset(offset)
        )
    )
    return schemas.OrderList(items=[await _answer(session, o, now) for o in orders], total=total)


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
            schemas.EventOut(
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
) -> schemas.DocumentOut:
    order, _ = await order_for(session, principal, order_id, now=now)
    if order.document_json is None or order.document_hash is None:
        raise DomainError("document_not_issued", "合同文本尚未生成。")
    return schemas.DocumentOut(
        document_hash=order.document_hash,
        canonical_json=order.document_json,
        document=json.loads(order.document_json),
    )


async def scene_of(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, *, now: datetime
) -> str:
    order = await _order(session, order_id)
    _staff_may_touch(principal, order)
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
    if order.status is not OrderStatus.signed or order.document_json is None:
        raise DomainError("evidence_not_ready", "合同尚未签订完成，暂无证据包。")
    records = [
        SignatureRecord.from_dict(json.loads(raw))
        for raw in await session.scalars(
            select(ContractSignature.record_json)
            .where(ContractSignature.order_id == order.id)
            .order_by(ContractSignature.signed_at, ContractSignature.role)
        )
    ]
    chained = [
        json.loads(raw)
        for raw in await session.scalars(
            select(ContractEvent.event_json)
            .where(ContractEvent.order_id == order.id)
            .order_by(ContractEvent.seq)
        )
    ]
    ca = await keystore.ca(now)
    return build_bundle(
        ca, load_canonical_document(order.document_json), str(order.id), records, chained, now
    )


# ------------------------------------------------------------------ scan


async def scan(
    session: AsyncSession, principal: Principal, *, scene: str, now: datetime
) -> schemas.ScanAnswer:
    if not is_valid_scene(scene):
        raise DomainError("scene_unknown", "二维码无效或已失效。")
    order = await session.scalar(
        select(ContractOrder).where(ContractOrder.scene == scene).with_for_update()
    )
    if order is None:
        raise DomainError("scene_unknown", "二维码无效或已失效。")
    assert principal.citizen_id is not None
    citizen = await identity.citizen_identity(session, principal.citizen_id)
    assert citizen is not None
    actor = mask_name(citizen.name) if citizen.name else "未实名用户"

    async def refuse(problem: DomainError) -> NoReturn:
        """Every scan is in the timeline, the refused ones too (committed, then raised)."""
        await _add_event(
            session, order, "scan_refused", actor=actor, now=now, detail={"reason": problem.code}
        )
        await _commit_and_raise(session, problem)

    if order.status in OPEN_STATUSES and effective_status(order, now) is OrderStatus.expired:
        await _expire(session, order, now)
    if order.status is OrderStatus.expired:
        await refuse(DomainError("qr_expired", "二维码已过期，请联系销售人员重新生成。"))
    if order.status is OrderStatus.voided:
        await refuse(DomainError("order_voided", "该合同订单已作废。"))

    if citizen.identity_level is not IdentityLevel.face_verified:
        await refuse(DomainError("face_verification_required", "请先完成实名认证和人脸核身。"))
    parties = await _parties(session, order.id)
    party = next((p for p in parties if p.id_number_index == citizen.id_number_index), None)
    if party is None:
        await refuse(DomainError("not_a_party", "您不是该合同的签约方。"))
    assert party is not None
    if party.citizen_id is None:
        party.citizen_id = citizen.id
    await _add_event(
        session, order, "scanned", actor=actor, now=now, detail={"party": party.position}
    )
    assert order.document_json is not None and order.document_hash is not None
    return schemas.ScanAnswer(
        order=await _answer(session, order, now, parties=parties, my_party_id=party.id),
        party_id=party.id,
        role=party.role,
        document=json.loads(order.document_json),
        document_hash=order.document_hash,
    )


# ------------------------------------------------------------------ buyers sign


@dataclass(frozen=True)
class Client:
    ip: str
    user_agent: str


async def _signable(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, now: datetime
) -> tuple[ContractOrder, ContractParty]:
    order = await _order(session, order_id, lock=True)
    party = await _my_party(session, principal, order)
    await _expire_if_due(session, order, now)
    _refuse_ended(order)
    if order.status is not OrderStatus.awaiting_signatures:
        raise DomainError(
            "order_not_signable", "该合同订单不在待签署状态。", order_status=order.status.value
        )
    if party.signed_at is not None:
        raise DomainError("already_signed", "您已签署该合同。")
    return order, party


def _sign_subject(order: ContractOrder, party: ContractParty) -> str:
    return f"{order.id}:{party.id}:{order.document_hash}"


async def signature_challenge(
    session: AsyncSession,
    keys: ServiceKeys,
    sms: SmsChannel,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
) -> schemas.ChallengeOut:
    order, party = await _signable(session, principal, order_id, now)
    assert principal.citizen_id is not None
    citizen = await identity.citizen_identity(session, principal.citizen_id)
    if citizen is None or not citizen.phone:
        raise DomainError("phone_required", "请先绑定手机号。")
    challenge_id, sent = await identity.issue_code(
        session,
        keys,
        sms,
        phone=citizen.phone,
        now=now,
        purpose=SIGN_PURPOSE,
        subject=_sign_subject(order, party),
    )
    await _add_event(
        session,
        order,
        "sign_code_sent",
        actor=mask_name(party.name),
        now=now,
        detail={"party": party.position},
    )
    assert order.document_hash is not None
    return schemas.ChallengeOut(
        challenge_id=challenge_id,
        sent=sent.sent,
        expires_in=sent.expires_in,
        resend_after=sent.resend_after,
        phone_masked=mask_phone(citizen.phone),
        document_hash=order.document_hash,
    )


async def sign(
    session: AsyncSession,
    keys: ServiceKeys,
    keystore: Keystore,
    principal: Principal,
    order_id: uuid.UUID,
    data: schemas.SignIn,
    *,
    client: Client,
    now: datetime,
) -> schemas.Signed:
    order, party = await _signable(session, principal, order_id, now)
    assert principal.citizen_id is not None and order.document_hash is not None
    citizen = await identity.citizen_identity(session, principal.citizen_id)
    if citizen is None or not citizen.phone:
        raise DomainError("phone_required", "请先绑定手机号。")
    verified = await identity.verify_code(
        session,
        keys,
        phone=citizen.phone,
        code=data.code,
        now=now,
        purpose=SIGN_PURPOSE,
        subject=_sign_subject(order, party),
    )
    if verified.challenge_id != data.challenge_id:
        await _commit_and_raise(
            session, DomainError("challenge_mismatch", "验证码与签署请求不匹配，请重新获取。")
        )
    id_number = keys.pii.decrypt(party.id_number_encrypted, field=PARTY_ID_FIELD)
    id_hash = signer_id_hash(id_number, keys.signer_id)
    context = SigningContext(
        document_hash=order.document_hash,
        order_id=str(order.id),
        role=SignerRole.BUYER,
        signer_id_hash=id_hash,
        signing_time=now,
        challenge_id=verified.challenge_id,
        client_ip=_client_ip(client.ip),
        user_agent=client.user_agent[:300],
    )
    ca = await keystore.ca(now)
    record = sign_once(ca, Signer(party.name, id_hash, SignerRole.BUYER), context, now)
    await _store_signature(
        session,
        order,
        str(party.id),
        record,
        now=now,
        twice=DomainError("already_signed", "您已签署该合同。"),
    )
    party.signed_at = now
    order.updated_at = now
    await _add_event(
        session,
        order,
        "signed",
        actor=mask_name(party.name),
        now=now,
        detail={"party": party.position, "role": "buyer", "challenge_id": verified.challenge_id},
    )
    parties = await _parties(session, order.id)
    if all(p.signed_at is not None for p in parties):
        order.status = OrderStatus.awaiting_seal
        await _add_event(session, order, "awaiting_seal", actor=SYSTEM_ACTOR, now=now)
    await session.flush()
    return schemas.Signed(
        order=await _answer(session, order, now, parties=parties, my_party_id=party.id),
        party_id=party.id,
        signed_at=now,
    )


async def decline(
    session: AsyncSession,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    reason: str,
    now: datetime,
) -> schemas.OrderOut:
    order, party = await _signable(session, principal, order_id, now)
    party.declined_at = now
    order.status = OrderStatus.voided
    order.ended_at = now
    order.end_reason = f"declined: {reason.strip()}"[:200]
    order.updated_at = now
    await _add_event(
        session,
        order,
        "declined",
        actor=mask_name(party.name),
        now=now,
        detail={"party": party.position, "reason": reason.strip()},
    )
    return await _answer(session, order, now, my_party_id=party.id)


# ------------------------------------------------------------------ seal and completion


async def _store_signature(
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


async def _sealable(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, now: datetime
) -> ContractOrder:
    order = await _order(session, order_id, lock=True)
    _staff_may_touch(principal, order)
    await _expire_if_due(session, order, now)
    _refuse_ended(order)
    if order.status is OrderStatus.signed:
        raise DomainError("already_sealed", "该合同已盖章。")
    if order.status is not OrderStatus.awaiting_seal:
        raise DomainError(
            "not_ready_for_seal",
            "买受人尚未全部签署，不能盖章。",
            order_status=order.status.value,
        )
    await _check_unit_saleable(session, order.unit_id, order.kind, today=business_date(now))
    return order


def _seal_subject(order: ContractOrder) -> str:
    return f"{order.id}:seal:{order.document_hash}"


async def seal_challenge(
    session: AsyncSession,
    keys: ServiceKeys,
    sms: SmsChannel,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
) -> schemas.ChallengeOut:
    order = await _sealable(session, principal, order_id, now)
    assert principal.staff_id is not None and order.document_hash is not None
    staff = await identity.staff_identity(session, principal.staff_id)
    assert staff is not None
    challenge_id, sent = await identity.issue_code(
        session,
        keys,
        sms,
        phone=staff.phone,
        now=now,
        purpose=SEAL_PURPOSE,
        subject=_seal_subject(order),
    )
    await _add_event(session, order, "seal_code_sent", actor=_actor_staff(staff), now=now)
    return schemas.ChallengeOut(
        challenge_id=challenge_id,
        sent=sent.sent,
        expires_in=sent.expires_in,
        resend_after=sent.resend_after,
        phone_masked=mask_phone(staff.phone),
        document_hash=order.document_hash,
    )


async def _next_contract_number(session: AsyncSession, kind: ContractKind, now: datetime) -> str:
    prefix = "YS" if kind is ContractKind.presale else "XS"
    name = f"{prefix}{business_date(now).year}"
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    await session.execute(
        insert(ContractCounter).values(name=name, value=0).on_conflict_do_nothing()
    )
    value = await session.scalar(
        update(ContractCounter)
        .where(ContractCounter.name == name)
        .values(value=ContractCounter.value + 1)
        .returning(ContractCounter.value)
    )
    assert value is not None
    return f"{name}{value:08d}"


async def seal(
    session: AsyncSession,
    keys: ServiceKeys,
    keystore: Keystore,
    principal: Principal,
    order_id: uuid.UUID,
    data: schemas.SealIn,
    *,
    client: Client,
    now: datetime,
) -> schemas.Sealed:
    order = await _sealable(session, principal, order_id, now)
    assert principal.staff_id is not None and order.document_hash is not None
    staff = await identity.staff_identity(session, principal.staff_id)
    assert staff is not None
    await identity.check_staff_totp(session, keys, staff.id, data.totp_code, now)
    verified = await identity.verify_code(
        session,
        keys,
        phone=staff.phone,
        code=data.code,
        now=now,
        purpose=SEAL_PURPOSE,
        subject=_seal_subject(order),
    )
    if verified.challenge_id != data.challenge_id:
        await _commit_and_raise(
            session, DomainError("challenge_mismatch", "验证码与盖章请求不匹配，请重新获取。")
        )
    terms = _terms(order)
    developer = terms["developer"]
    try:
        company = Company(developer["name"], developer["credit_code"])
    except CertificateIssueError:
        raise DomainError(
            "seal_unavailable", "企业名称或统一社会信用代码无法用于印章证书，请联系平台。"
        ) from None
    ca = await keystore.ca_with_seal(company, now)
    context = SigningContext(
        document_hash=order.document_hash,
        order_id=str(order.id),
        role=SignerRole.SEAL,
        signer_id_hash=signer_id_hash(developer["credit_code"], keys.signer_id),
        signing_time=now,
        challenge_id=verified.challenge_id,
        client_ip=_client_ip(client.ip),
        user_agent=client.user_agent[:300],
    )
    record = seal_sign(ca, developer["credit_code"], context, now)
    await _store_signature(
        session,
        order,
        "seal",
        record,
        now=now,
        twice=DomainError("already_sealed", "该合同已盖章。"),
    )
    await _add_event(
        session,
        order,
        "sealed",
        actor=_actor_staff(staff),
        now=now,
        detail={"challenge_id": verified.challenge_id},
    )
    number = await _next_contract_number(session, order.kind, now)
    password = f"{secrets.randbelow(10**8):08d}"
    order.contract_number = number
    order.password_hash = keys.credential_hash(PASSWORD_PURPOSE, password)
    order.status = OrderStatus.signed
    order.completed_at = now
    order.updated_at = now
    await session.flush()
    await _add_event(
        session, order, "completed", actor=SYSTEM_ACTOR, now=now, detail={"contract_number": number}
    )
    parties = await _parties(session, order.id)
    for party in parties:
        party.password_encrypted = keys.pii.encrypt(password, field=PASSWORD_FIELD)
        await outbox.enqueue_to_person(
            session,
            keys,
            template="contract_signed",
            params={
                "estate": terms["unit"]["project"],
                "building": terms["unit"]["building"],
                "room": terms["unit"]["room_no"],
                "buyer_name": party.name,
                "contract_number": number,
                "password": password,
            },
            dedupe_key=f"{order.id}:signed:{party.id}",
            now=now,
            phone=party.phone,
            company_id=order.company_id,
            contract_id=order.id,
        )
    if await escrow.approved_account_for_project(session, order.project_id) is not None:
        await escrow.create_payment_notices(
            session,
            keys,
            contract_id=order.id,
            contract_number=number,
            project_id=order.project_id,
            company_id=order.company_id,
            buyers=[escrow.NoticePayee(phone=p.phone, name=p.name) for p in parties if p.phone],
            deposit_fen=order.deposit_fen,
            down_payment_fen=order.down_payment_fen,
            estate=terms["unit"]["project"],
            building=terms["unit"]["building"],
            room=terms["unit"]["room_no"],
            now=now,
        )
    return schemas.Sealed(
        order=await _answer(session, order, now, parties=parties),
        contract_number=number,
        password=password,
    )


# ------------------------------------------------------------------ public


async def verify_contract(
    session: AsyncSession, keys: ServiceKeys, *, number: str, password: str
) -> schemas.VerifyAnswer:
    """Genuine or not; the same answer for an unknown number and a wrong password."""
    number = number.strip().upper()
    order = await session.scalar(
        select(ContractOrder).where(ContractOrder.contract_number == number)
    )
    if (
        order is None
        or order.password_hash is None
        or not keys.credential_matches(PASSWORD_PURPOSE, password, order.password_hash)
    ):
        return schemas.VerifyAnswer(genuine=False, contract_number=number)
    terms = _terms(order)
    parties = await _parties(session, order.id)
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
    return schemas.VerifyAnswer(
        genuine=True,
        contract_number=number,
        status=order.status,
        unit=schemas.UnitOut(
            id=order.unit_id,
            project=terms["unit"]["project"],
            building=terms["unit"]["building"],
            room_no=terms["unit"]["room_no"],
        ),
        company=terms["developer"]["name"],
        parties=[{"role": p.role, "name": mask_name(p.name)} for p in parties],
        document_hash=order.document_hash,
        signatures=[
            {
                "role": role,
                "name": names.get(key, terms["developer"]["name"]),
                "signed_at": format_utc(signed_at),
            }
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
    """For the public building table: unit id -> "signing" (a live unsigned order) or
    "signed" (a completed contract)."""
    query = select(ContractOrder.unit_id, ContractOrder.status, ContractOrder.expires_at).where(
        ContractOrder.status.in_(LIVE_STATUSES)
    )
    if building_id is not None:
        query = query.where(ContractOrder.building_id == building_id)
    elif project_ids is not None:
        query = query.where(ContractOrder.project_id.in_(project_ids))
    statuses: dict[uuid.UUID, str] = {}
    for unit_id, status, expires_at in await session.execute(query):
        if status is OrderStatus.signed:
            statuses[unit_id] = "signed"
        elif status is OrderStatus.draft or (expires_at is not None and now < expires_at):
            statuses[unit_id] = "signing"
    return statuses


def expiry_sweep(database: Any, clock: Any) -> Any:
    """The periodic job for the worker loop: expire overdue orders in a short transaction."""

    async def expire_overdue_orders() -> int:
        async with database.writer() as session, session.begin():
            return await expire_due_orders(session, clock.now())

    return expire_overdue_orders


async def reveal_password(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
) -> schemas.PasswordOnce:
    """The contract password for the calling buyer, once: then it is wiped (the SMS has it
    too). Kept encrypted until then, never in clear."""
    order = await _order(session, order_id, lock=True)
    party = await _my_party(session, principal, order)
    if order.status is not OrderStatus.signed or order.contract_number is None:
        raise DomainError("contract_not_signed", "合同尚未签订完成，还没有合同密码。")
    if party.password_encrypted is None:
        raise DomainError(
            "password_already_shown",
            "合同密码仅显示一次，您已查看过；请查阅短信或联系售楼处。",
        )
    password = keys.pii.decrypt(party.password_encrypted, field=PASSWORD_FIELD)
    party.password_encrypted = None
    await _add_event(
        session, order, "password_shown", actor=mask_name(party.name), now=now, detail={}
    )
    return schemas.PasswordOnce(contract_number=order.contract_number, password=password)


async def is_party(session: AsyncSession, principal: Principal, order_id: uuid.UUID) -> bool:
    """Whether the calling citizen is bound to a party of this order (for other contexts,
    e.g. escrow showing payment notices to the buyers)."""
    if principal.citizen_id is None:
        return False
    return (
        await session.scalar(
            select(ContractParty.id).where(
                ContractParty.order_id == order_id,
                ContractParty.citizen_id == principal.citizen_id,
            )
        )
    ) is not None


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
