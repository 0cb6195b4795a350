"""The developer seals: the seal keeper's SMS code (and TOTP once enrolled), the company
seal certificate, then the contract is signed: its number, its password (shown once),
the SMS to every buyer and the hand-over to escrow.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.acts import SEAL_PURPOSE, Client, SigningCode, company_seals
from api.contracts.filing import submit_for_filing
from api.contracts.keystore import Keystore
from api.contracts.models import (
    ContractKind,
    ContractOrder,
    ContractParty,
    OrderStatus,
)
from api.contracts.policy import ContractPolicy
from api.contracts.queries import (
    SYSTEM_ACTOR,
    challenge_answer,
    check_unit_saleable,
    expire_if_due,
    get_order,
    hand_to_escrow,
    is_contract,
    message_parties,
    my_party,
    next_number,
    order_answer,
    parties_of,
    record_event,
    refuse_ended,
    staff_label,
    staff_may_touch,
    store_signature,
)
from api.contracts.terms import (
    terms_of,
)
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
from signing.pii import mask_name

PASSWORD_FIELD = "contract_party.password"  # noqa: S105  (an encryption field label)


PASSWORD_PURPOSE = "contract-password"  # noqa: S105  (a hash domain label)




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
    challenge_id, sent = await issue_code(
        session,
        keys,
        sms,
        phone=staff.phone,
        now=now,
        purpose=SEAL_PURPOSE,
        subject=_seal_subject(order),
    )
    await record_event(session, order, "seal_code_sent", actor=staff_label(staff), now=now)
    return challenge_answer(
        challenge_id, sent, phone=staff.phone, document_hash=order.document_hash
    )


async def seal(
    session: AsyncSession,
    keys: ServiceKeys,
    keystore: Keystore,
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
    record, challenge_id = await company_seals(
        session,
        keys,
        keystore,
        staff,
        terms_of(order).developer,
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
    number, password, parties = await _complete(session, keys, order, policy, now=now)
    return schemas.Sealed(
        order=await order_answer(session, order, now, parties=parties),
        contract_number=number,
        password=password,
    )


async def _complete(
    session: AsyncSession,
    keys: ServiceKeys,
    order: ContractOrder,
    policy: ContractPolicy,
    *,
    now: datetime,
) -> tuple[str, str, list[ContractParty]]:
    """The sealed contract is signed: its number and password (kept only as a keyed hash,
    and encrypted for each buyer until shown once), the seed's SMS to every buyer with
    both, the contract handed to escrow for its payment notices, and filing."""
    prefix = "YS" if order.kind is ContractKind.presale else "XS"
    number = await next_number(session, f"{prefix}{business_date(now).year}")
    password = f"{secrets.randbelow(10**8):08d}"
    order.contract_number = number
    order.password_hash = keys.credential_hash(PASSWORD_PURPOSE, password)
    order.status = OrderStatus.signed
    order.completed_at = now
    order.updated_at = now
    await session.flush()
    await record_event(
        session, order, "completed", actor=SYSTEM_ACTOR, now=now, detail={"contract_number": number}
    )
    parties = await parties_of(session, order.id)
    for party in parties:
        party.password_encrypted = keys.pii.encrypt(password, field=PASSWORD_FIELD)
    await message_parties(
        session,
        keys,
        order,
        parties,
        template="contract_signed",
        params={"contract_number": number, "password": password},
        event="signed",
        now=now,
        by_name=True,
    )
    await hand_to_escrow(
        session, keys, order, kinds=(NoticeKind.deposit, NoticeKind.down_payment), now=now
    )
    await submit_for_filing(session, keys, order, policy, now=now)
    return number, password, parties


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
    order = await get_order(session, order_id, lock=True)
    party = await my_party(session, principal, order)
    if order.contract_number is None:
        raise DomainError("contract_not_signed", "合同尚未签订完成，还没有合同密码。")
    if party.password_encrypted is None:
        raise DomainError(
            "password_already_shown",
            "合同密码仅显示一次，您已查看过；请查阅短信或联系售楼处。",
        )
    password = keys.pii.decrypt(party.password_encrypted, field=PASSWORD_FIELD)
    party.password_encrypted = None
    await record_event(
        session, order, "password_shown", actor=mask_name(party.name), now=now, detail={}
    )
    return schemas.PasswordOnce(contract_number=order.contract_number, password=password)


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
                func.coalesce(ContractOrder.reminded_at, ContractOrder.updated_at)
                < start_of_today,
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
                phone=keeper.phone,
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
