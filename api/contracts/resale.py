"""Resale orders (存量房网签, seed 004): an owner checks their title by its number and check
code (房源验证), fills in the contract naming every owner on the title as a seller, and
issues it for the buyers to scan (``orders.issue_order``, the same as a new home). Every
party signs; the seller submits; the contract is signed (已签约) and, if the parties chose
supervision, the buyer's money goes into the city's resale account until the regulator
records the transfer of the title (转移登记完成), when it is released to the sellers.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import documents, schemas
from api.contracts.completion import complete_contract
from api.contracts.models import (
    LIVE_STATUSES,
    ContractKind,
    ContractOrder,
    OrderStatus,
)
from api.contracts.orders import check_money_and_dates, expire_due_orders, unit_terms
from api.contracts.pdfs import ContractPdfs, commit_then_finish_pdf
from api.contracts.people import (
    SELLER_ACCOUNT_FIELD,
    Person,
    add_parties,
    checked_buyers,
    party_terms,
    refuse_minor,
    refuse_other_name,
)
from api.contracts.queries import (
    check_unit_saleable,
    creator_may_act,
    expire_if_due,
    get_order,
    hand_to_escrow,
    is_contract,
    message_parties,
    order_answer,
    parties_of,
    record_event,
    refuse_ended,
    staff_actor,
)
from api.contracts.terms import (
    CO_OWNERSHIP_LABELS,
    PAYMENT_LABELS,
    RESALE_TEMPLATE,
    RESALE_TITLE,
    TAX_BEARER_LABELS,
    AccountTerms,
    ContractTerms,
    ResaleTerms,
)
from api.contracts.wording import room_label
from api.core.clock import business_date, end_of_next_natural_day
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.validators import normalize_phone
from api.db.engine import Database
from api.escrow.accounts import CityAccount, city_resale_account
from api.escrow.instructions import pay_sellers
from api.escrow.models import NoticeKind
from api.escrow.notices import notices_settled
from api.identity.models import IdentityLevel
from api.identity.principal import Principal
from api.identity.verification import CitizenIdentity, citizen_identity
from api.register.models import RestrictionKind
from api.register.queries import UnitContext, format_area, unit_context, unit_sale_facts
from api.register.titles import (
    TitleFacts,
    check_title,
    checked_recently,
    owner_id_numbers,
    title_facts,
)
from signing.pii import mask_account, mask_name

TITLE_UNAVAILABLE = "该房屋已有未完成的合同订单或已签约。"


async def verified_citizen(session: AsyncSession, principal: Principal) -> CitizenIdentity:
    """The calling citizen, who must have passed real-name and face verification."""
    assert principal.citizen_id is not None
    citizen = await citizen_identity(session, principal.citizen_id)
    if citizen is None or citizen.identity_level is not IdentityLevel.face_verified:
        raise DomainError("face_verification_required", "请先完成实名认证和人脸核身。")
    return citizen


def _my_place(title: TitleFacts, citizen: CitizenIdentity) -> int:
    """The caller's place among the title's owners: document and name must both match."""
    for owner in title.owners:
        if owner.id_number_index == citizen.id_number_index:
            refuse_other_name(owner.name, citizen.name)
            return owner.position
    raise DomainError("title_not_owner", "您不是该不动产权证的权利人，不能出售该房屋。")


async def _unit_of(session: AsyncSession, title: TitleFacts) -> UnitContext:
    unit = await unit_context(session, title.unit_id)
    if unit is None:  # a title always names a registered unit (foreign key)
        raise DomainError("unit_not_found", "未找到该户室。")
    return unit


async def _live_order(session: AsyncSession, title: TitleFacts) -> ContractOrder | None:
    return await session.scalar(
        select(ContractOrder).where(
            or_(ContractOrder.title_id == title.id, ContractOrder.unit_id == title.unit_id),
            ContractOrder.status.in_(LIVE_STATUSES),
        )
    )


async def title_check(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    data: schemas.TitleCheckIn,
    *,
    now: datetime,
) -> schemas.TitleAnswer:
    """房源验证: what an owner may know of their title before selling it. Wrong codes are
    counted (``titles.check_title``); a seized or restricted title is refused."""
    citizen = await verified_citizen(session, principal)
    title = await check_title(
        session,
        keys,
        certificate_no=data.certificate_no,
        check_code=data.check_code,
        citizen_id=citizen.id,
        now=now,
    )
    mine = _my_place(title, citizen)
    unit = await _unit_of(session, title)
    today = business_date(now)
    await check_unit_saleable(session, unit.unit_id, ContractKind.resale, today=today)
    facts = (await unit_sale_facts(session, today=today, unit_ids=[unit.unit_id]))[unit.unit_id]
    await expire_due_orders(session, now, unit_id=unit.unit_id)
    live = await _live_order(session, title)
    return schemas.TitleAnswer(
        title_id=title.id,
        certificate_no=title.certificate_no,
        registered_on=title.registered_on,
        unit_id=unit.unit_id,
        address=unit.building_address,
        project=unit.project_name,
        building=unit.building_name,
        room_no=unit.room_no,
        label=unit.project_name + room_label(unit.building_name, unit.unit_label, unit.room_no),
        building_area=format_area(unit.building_area),
        use=unit.use,
        owners=[
            schemas.TitleOwnerAnswer(
                name=mask_name(owner.name),
                id_number_masked=owner.id_number_masked,
                share=owner.share,
                me=owner.position == mine,
            )
            for owner in title.owners
        ],
        mortgaged=facts.mortgaged,
        restrictions=[RestrictionKind.mortgage.value] if facts.mortgaged else [],
        live_order_id=live.id
        if live is not None and live.seller_citizen_id == citizen.id
        else None,
    )


async def _sellers(
    session: AsyncSession,
    keys: ServiceKeys,
    title: TitleFacts,
    citizen: CitizenIdentity,
    mine: int,
    phones: list[str],
    *,
    now: datetime,
) -> list[Person]:
    """Every owner on the title, as a seller who signs: their phones in the title's order
    (mine is my verified phone, whatever was typed)."""
    if len(phones) != len(title.owners):
        raise DomainError(
            "seller_phones_invalid",
            f"该产权证共有 {len(title.owners)} 名权利人，请依次填写每位权利人的手机号码。",
            owners=len(title.owners),
        )
    numbers = await owner_id_numbers(session, keys, title.id)
    sellers = []
    for owner, number, typed in zip(title.owners, numbers, phones, strict=True):
        phone = citizen.phone(keys) if owner.position == mine else typed.strip()
        if not phone:
            raise DomainError(
                "seller_phone_required",
                f"请填写权利人 {mask_name(owner.name)} 的手机号码，用于接收签署邀请和验证码。",
                owner=owner.position,
            )
        refuse_minor("seller", owner.name, owner.id_type, number, today=business_date(now))
        sellers.append(
            Person("seller", owner.name, owner.id_type, number, normalize_phone(phone), owner.share)
        )
    return sellers


def _refuse_buyer_among_sellers(buyers: list[Person], sellers: list[Person]) -> None:
    owners = {(s.id_type, s.id_number) for s in sellers}
    if any((b.id_type, b.id_number) in owners for b in buyers):
        raise DomainError("buyer_is_seller", "买受人不能是该房屋的权利人（出卖人）。")


def _co_ownership(data: schemas.NewResaleOrder) -> schemas.CoOwnership:
    if len(data.buyers) == 1:
        return schemas.CoOwnership.sole
    if data.co_ownership is schemas.CoOwnership.sole:
        raise DomainError(
            "co_ownership_required", "买受人为多人时，须选择共有性质（共同共有或按份共有）。"
        )
    return data.co_ownership


async def _supervision(
    session: AsyncSession, data: schemas.NewResaleOrder
) -> tuple[CityAccount | None, schemas.SellerAccountIn | None]:
    """The city's account and the sellers' account, when the parties chose supervision."""
    if not data.funds_supervised:
        return None, None
    account = await city_resale_account(session)
    if account is None:
        raise DomainError(
            "supervised_account_missing",
            "本市存量房交易资金监管账户尚未开通，请选择不监管或到交易中心窗口办理。",
        )
    if data.seller_account is None:
        raise DomainError("seller_account_required", "选择资金监管时，须填写出卖人收款银行和账号。")
    return account, data.seller_account


def _terms(
    keys: ServiceKeys,
    unit: UnitContext,
    title: TitleFacts,
    data: schemas.NewResaleOrder,
    people: list[Person],
    *,
    mortgaged: bool,
    co_ownership: schemas.CoOwnership,
    city: CityAccount | None,
    payee: schemas.SellerAccountIn | None,
) -> ContractTerms:
    sellers = "、".join(p.name for p in people if p.role == "seller")
    return ContractTerms(
        contract_kind=ContractKind.resale.value,
        title=RESALE_TITLE,
        unit=unit_terms(unit),
        price_fen=data.price_fen,
        payment_method=data.payment_method.value,
        payment_method_label=PAYMENT_LABELS[data.payment_method],
        deposit_fen=data.deposit_fen,
        down_payment_fen=data.down_payment_fen,
        delivery_date=data.delivery_date.isoformat(),
        parties=[party_terms(keys, person) for person in people],
        resale=ResaleTerms(
            certificate_no=title.certificate_no,
            registered_on=title.registered_on.isoformat(),
            mortgaged=mortgaged,
            co_ownership=co_ownership.value,
            co_ownership_label=CO_OWNERSHIP_LABELS[co_ownership.value],
            taxes_borne_by=data.taxes_borne_by.value,
            taxes_borne_by_label=TAX_BEARER_LABELS[data.taxes_borne_by.value],
            funds_supervised=city is not None,
            supervised_account=AccountTerms(
                bank_name=city.bank_name,
                account_name=city.account_name,
                account_number=city.account_number,
            )
            if city is not None
            else None,
            seller_account=AccountTerms(
                bank_name=payee.bank_name.strip(),
                account_name=sellers,
                account_number=mask_account(payee.account_number),
            )
            if payee is not None
            else None,
        ),
    )


def _new_order(
    keys: ServiceKeys,
    unit: UnitContext,
    title: TitleFacts,
    citizen: CitizenIdentity,
    data: schemas.NewResaleOrder,
    terms: ContractTerms,
    *,
    payee: schemas.SellerAccountIn | None,
    now: datetime,
) -> ContractOrder:
    payee_json = (
        msgspec.json.encode(
            {
                "bank_name": payee.bank_name.strip(),
                "account_name": terms.seller_label,
                "account_number": payee.account_number,
            }
        ).decode()
        if payee is not None
        else None
    )
    return ContractOrder(
        company_id=None,
        project_id=unit.project_id,
        building_id=unit.building_id,
        unit_id=unit.unit_id,
        agent_id=None,
        seller_citizen_id=citizen.id,
        title_id=title.id,
        funds_supervised=payee is not None,
        seller_account_encrypted=keys.pii.encrypt(payee_json, field=SELLER_ACCOUNT_FIELD)
        if payee_json is not None
        else None,
        kind=ContractKind.resale,
        status=OrderStatus.draft,
        price_fen=data.price_fen,
        payment_method=data.payment_method,
        deposit_fen=data.deposit_fen,
        down_payment_fen=data.down_payment_fen,
        delivery_date=data.delivery_date,
        template_id=RESALE_TEMPLATE,
        template_version=documents.current_version(RESALE_TEMPLATE),
        terms_json=terms.to_json(),
        end_reason="",
        expires_at=end_of_next_natural_day(now),
        created_at=now,
        updated_at=now,
    )


async def create_resale_order(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    data: schemas.NewResaleOrder,
    *,
    now: datetime,
) -> schemas.OrderAnswer:
    """The seller's contract for their title, a draft until they issue it. It is deleted
    (expired, personal data purged) at the end of the next natural day unless every party
    has signed by then (seed 004)."""
    citizen = await verified_citizen(session, principal)
    title = await title_facts(session, data.title_id)
    mine = _my_place(title, citizen)
    if not await checked_recently(session, title.id, citizen.id, now):
        raise DomainError("title_check_required", "请先用产权证号和校验码完成房源验证。")
    unit = await _unit_of(session, title)
    today = business_date(now)
    await check_unit_saleable(session, unit.unit_id, ContractKind.resale, today=today)
    check_money_and_dates(
        price_fen=data.price_fen,
        deposit_fen=data.deposit_fen,
        down_payment_fen=data.down_payment_fen,
        delivery=data.delivery_date,
        today=today,
    )
    co_ownership = _co_ownership(data)
    buyers = checked_buyers(
        data.buyers, today=today, by_share=co_ownership is schemas.CoOwnership.by_share
    )
    sellers = await _sellers(session, keys, title, citizen, mine, data.seller_phones, now=now)
    _refuse_buyer_among_sellers(buyers, sellers)
    city, payee = await _supervision(session, data)
    await expire_due_orders(session, now, unit_id=unit.unit_id)
    if await _live_order(session, title) is not None:
        raise DomainError("title_unavailable", TITLE_UNAVAILABLE)
    facts = (await unit_sale_facts(session, today=today, unit_ids=[unit.unit_id]))[unit.unit_id]
    terms = _terms(
        keys,
        unit,
        title,
        data,
        [*sellers, *buyers],
        mortgaged=facts.mortgaged,
        co_ownership=co_ownership,
        city=city,
        payee=payee,
    )
    order = _new_order(keys, unit, title, citizen, data, terms, payee=payee, now=now)
    session.add(order)
    try:
        await session.flush()
    except IntegrityError:  # another order for this title or unit won the race
        raise DomainError("title_unavailable", TITLE_UNAVAILABLE) from None
    parties = add_parties(session, keys, order, [*sellers, *buyers])
    parties[mine].citizen_id = citizen.id  # the seller who made it is who they say
    await session.flush()
    await record_event(
        session,
        order,
        "created",
        actor=mask_name(citizen.name or ""),
        now=now,
        detail={
            "certificate_no": title.certificate_no,
            "sellers": len(sellers),
            "buyers": len(buyers),
            "price_fen": data.price_fen,
            "funds_supervised": city is not None,
        },
    )
    return await order_answer(session, order, now, parties=parties, my_party_id=parties[mine].id)


async def _resale_order(session: AsyncSession, order_id: uuid.UUID, now: datetime) -> ContractOrder:
    order = await get_order(session, order_id, lock=True)
    if order.kind is not ContractKind.resale:
        raise DomainError("not_resale", "该操作仅适用于存量房合同。")
    await expire_if_due(session, order, now)
    refuse_ended(order)
    return order


async def submit(
    session: AsyncSession,
    database: Database,
    keys: ServiceKeys,
    pdfs: ContractPdfs,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
) -> schemas.Submitted:
    """订单已经完成签字 → 提交: the seller who made the order submits it; it is signed."""
    order = await _resale_order(session, order_id, now)
    await creator_may_act(session, principal, order)
    if is_contract(order):
        raise DomainError("already_submitted", "该合同已提交签约。")
    if order.status is not OrderStatus.awaiting_submit:
        raise DomainError(
            "signatures_missing",
            "订单尚未完成签字，买卖各方全部签署后才能提交。",
            order_status=order.status.value,
        )
    await check_unit_saleable(session, order.unit_id, order.kind, today=business_date(now))
    citizen = await verified_citizen(session, principal)
    await record_event(session, order, "submitted", actor=mask_name(citizen.name or ""), now=now)
    number, password, parties = await complete_contract(
        session, keys, order, prefix="CL", template="resale_contract_signed", now=now
    )
    # The submitter sees the password in this answer: that was their first showing.
    for party in parties:
        if party.citizen_id == principal.citizen_id:
            party.password_shown_at = now
    await hand_to_escrow(
        session, keys, order, kinds=(NoticeKind.deposit, NoticeKind.down_payment), now=now
    )
    submitted = schemas.Submitted(
        order=await order_answer(session, order, now, parties=parties),
        contract_number=number,
        password=password,
    )
    # No seal: the platform's stamp with the QR code and the document time-stamp.
    await commit_then_finish_pdf(session, database, pdfs, order.id, now)
    return submitted


async def record_transfer(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
) -> schemas.OrderAnswer:
    """转移登记完成, recorded by a regulator: the title is the buyers' now, and what the
    contract holds in supervision is paid to the sellers' account."""
    order = await _resale_order(session, order_id, now)
    if order.status is not OrderStatus.signed:
        raise DomainError(
            "contract_not_transferable",
            "只有已签约且未在注销中的存量房合同可以办理转移登记。",
            order_status=order.status.value,
        )
    if order.funds_supervised and not await notices_settled(session, order.id):
        raise DomainError("funds_not_settled", "监管的交易资金尚未缴清，暂不能办理转移登记。")
    order.status = OrderStatus.transferred
    order.transfer_registered_at = order.updated_at = now
    payout = await pay_sellers(
        session, contract_id=order.id, requested_by=principal.staff_id, now=now
    )
    await record_event(
        session,
        order,
        "transfer_registered",
        actor=await staff_actor(session, principal),
        now=now,
        detail={"payout_fen": payout.amount_fen if payout is not None else 0},
    )
    await message_parties(
        session,
        keys,
        order,
        await parties_of(session, order.id),
        template="resale_transferred",
        params={"contract_number": order.contract_number},
        event="transferred",
        now=now,
    )
    return await order_answer(session, order, now)
