"""The developer seals: the seal keeper's SMS code (and TOTP once enrolled), the company
seal certificate, then the contract is signed: its number, its password (shown once),
the SMS to every buyer and the hand-over to escrow.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.acts import SEAL_PURPOSE, Client, SigningCode, company_seals
from api.contracts.completion import complete_contract
from api.contracts.filing import submit_for_filing
from api.contracts.models import (
    ContractKind,
    ContractOrder,
    OrderStatus,
)
from api.contracts.pdfs import ContractPdfs, commit_then_finish_pdf, stamp_evidence
from api.contracts.policy import ContractPolicy
from api.contracts.queries import (
    SYSTEM_ACTOR,
    challenge_answer,
    check_unit_saleable,
    expire_if_due,
    get_order,
    hand_to_escrow,
    is_contract,
    order_answer,
    record_event,
    refuse_ended,
    staff_label,
    staff_may_touch,
    store_signature,
)
from api.contracts.terms import developer_of, terms_of
from api.core.clock import SHANGHAI, Clock, business_date
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.escrow.models import NoticeKind
from api.identity.codes import issue_code
from api.identity.models import StaffRole
from api.identity.principal import Principal
from api.identity.staff import company_staff, staff_identity
from api.outbox import service as outbox
from notifications.sms import SmsChannel


async def _sealable(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, now: datetime
) -> ContractOrder:
    order = await get_order(session, order_id, lock=True)
    staff_may_touch(principal, order)
    await expire_if_due(session, order, now)
    refuse_ended(order)
    if is_contract(order):
        raise DomainError("already_sealed", "该合同已盖章。")
    if order.status is not OrderStatus.awaiting_seal:
        raise DomainError(
            "not_ready_for_seal",
            "买受人尚未全部签署，不能盖章。",
            order_status=order.status.value,
        )
    await check_unit_saleable(session, order.unit_id, order.kind, today=business_date(now))
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
) -> schemas.ChallengeAnswer:
    order = await _sealable(session, principal, order_id, now)
    assert principal.staff_id is not None and order.document_hash is not None
    staff = await staff_identity(session, principal.staff_id)
    assert staff is not None
    phone = staff.phone(keys)
    challenge_id, sent = await issue_code(
        session,
        keys,
        sms,
        phone=phone,
        now=now,
        purpose=SEAL_PURPOSE,
        subject=_seal_subject(order),
    )
    await record_event(session, order, "seal_code_sent", actor=staff_label(staff), now=now)
    return challenge_answer(
        challenge_id, sent, phone=phone, document_hash=order.document_hash
    )


async def seal(
    session: AsyncSession,
    database: Database,
    keys: ServiceKeys,
    pdfs: ContractPdfs,
    principal: Principal,
    order_id: uuid.UUID,
    data: schemas.SealIn,
    *,
    policy: ContractPolicy,
    client: Client,
    now: datetime,
) -> schemas.Sealed:
    order = await _sealable(session, principal, order_id, now)
    assert principal.staff_id is not None and order.document_hash is not None
    staff = await staff_identity(session, principal.staff_id)
    assert staff is not None
    developer = developer_of(order)
    record, challenge_id = await company_seals(
        session,
        keys,
        pdfs.keystore,
        staff,
        developer,
        document_hash=order.document_hash,
        order_id=str(order.id),
        typed=SigningCode(data.challenge_id, data.code, _seal_subject(order)),
        totp_code=data.totp_code,
        client=client,
        now=now,
    )
    await store_signature(
        session,
        order,
        "seal",
        record,
        now=now,
        twice=DomainError("already_sealed", "该合同已盖章。"),
    )
    await record_event(
        session,
        order,
        "sealed",
        actor=staff_label(staff),
        now=now,
        detail={"challenge_id": challenge_id},
    )
    await stamp_evidence(session, pdfs, order, "seal", record, now)
    prefix = "YS" if order.kind is ContractKind.presale else "XS"
    number, password, parties = await complete_contract(
        session, keys, order, prefix=prefix, template="contract_signed", now=now
    )
    await hand_to_escrow(
        session, keys, order, kinds=(NoticeKind.deposit, NoticeKind.down_payment), now=now
    )
    await submit_for_filing(session, keys, order, policy, now=now)
    sealed = schemas.Sealed(
        order=await order_answer(session, order, now, parties=parties),
        contract_number=number,
        password=password,
    )
    await commit_then_finish_pdf(session, database, pdfs, order.id, now)
    return sealed


# Reminders (催签) go out once a day, from this hour (Asia/Shanghai).
REMINDER_HOUR = 9


async def remind_to_seal(session: AsyncSession, keys: ServiceKeys, *, now: datetime) -> int:
    """An order every buyer signed does not expire while it waits for the seal; instead its
    company's seal keepers are reminded each day (催签). Returns the orders reminded."""
    local = now.astimezone(SHANGHAI)
    if local.hour < REMINDER_HOUR:
        return 0
    today = local.date()
    start_of_today = datetime.combine(today, time.min, tzinfo=SHANGHAI)
    waiting = list(
        await session.scalars(
            select(ContractOrder)
            .where(
                ContractOrder.status == OrderStatus.awaiting_seal,
                func.coalesce(ContractOrder.reminded_at, ContractOrder.updated_at) < start_of_today,
            )
            .order_by(ContractOrder.updated_at)
            .limit(200)
            .with_for_update(skip_locked=True)
        )
    )
    for order in waiting:
        unit = terms_of(order).unit
        days = (today - business_date(order.updated_at)).days
        keepers = await company_staff(session, order.company_id, StaffRole.seal_keeper)
        for keeper in keepers:
            await outbox.enqueue(
                session,
                keys,
                template="seal_reminder",
                params={
                    "estate": unit.project,
                    "building": unit.building,
                    "room": unit.room_no,
                    "business_no": order.business_number or "",
                    "days": days,
                },
                dedupe_key=f"{order.id}:seal-reminder:{today.isoformat()}:{keeper.id}",
                now=now,
                phone=keeper.phone(keys),
                company_id=order.company_id,
                contract_id=order.id,
            )
        order.reminded_at = now
        await record_event(
            session,
            order,
            "seal_reminded",
            actor=SYSTEM_ACTOR,
            now=now,
            detail={"days_waiting": days, "seal_keepers": len(keepers)},
        )
    return len(waiting)


def seal_reminder_sweep(database: Database, clock: Clock, keys: ServiceKeys) -> Any:
    """The periodic job for the worker loop: today's seal reminders, in a short transaction."""

    async def remind_waiting_seals() -> int:
        async with database.writer() as session, session.begin():
            return await remind_to_seal(session, keys, now=clock.now())

    return remind_waiting_seals
