"""A contract comes into being: sealed by the developer (a new home) or submitted by the
seller (a resale), it gets its number and its 8-digit password (合同密码), kept as a keyed
hash and, for each party, encrypted: shown on asking once, then again only after a fresh
SMS code; every party gets both by SMS.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.acts import SigningCode, checked_code
from api.contracts.models import ContractOrder, ContractParty, OrderStatus
from api.contracts.queries import (
    SYSTEM_ACTOR,
    get_order,
    message_parties,
    my_party,
    next_number,
    parties_of,
    record_event,
)
from api.core.clock import business_date
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.identity.codes import issue_code
from api.identity.principal import Principal
from api.identity.verification import citizen_identity
from notifications.sms import SmsChannel
from signing.pii import mask_name, mask_phone

PASSWORD_FIELD = "contract_party.password"  # noqa: S105  (an encryption field label)
PASSWORD_PURPOSE = "contract-password"  # noqa: S105  (a hash domain label)
PASSWORD_CODE_PURPOSE = "password"  # noqa: S105  (the SMS code that shows it again)


async def complete_contract(
    session: AsyncSession,
    keys: ServiceKeys,
    order: ContractOrder,
    *,
    prefix: str,
    template: str,
    now: datetime,
) -> tuple[str, str, list[ContractParty]]:
    """The order is a signed contract (已签约): its number in the ``prefix`` series of the
    year, its password, and the SMS (``template``) to every party with both."""
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
        template=template,
        params={"contract_number": number, "password": password},
        event="signed",
        now=now,
        by_name=True,
    )
    return number, password, parties


def _password_subject(order: ContractOrder, party: ContractParty) -> str:
    return f"password:{order.id}:{party.id}"


async def _password_holder(
    session: AsyncSession, keys: ServiceKeys, principal: Principal, order_id: uuid.UUID
) -> tuple[ContractOrder, ContractParty, str]:
    """The calling party of a numbered contract, and the phone its codes go to."""
    order = await get_order(session, order_id, lock=True)
    party = await my_party(session, principal, order)
    if order.contract_number is None:
        raise DomainError("contract_not_signed", "合同尚未签订完成，还没有合同密码。")
    if party.password_encrypted is None:
        # Wiped at its first showing before issue 19 (or the party's data was purged).
        raise DomainError(
            "password_already_shown",
            "该合同密码已不再保存，请查阅签约短信或到交易中心窗口办理。",
        )
    assert principal.citizen_id is not None
    citizen = await citizen_identity(session, principal.citizen_id)
    phone = citizen.phone(keys) if citizen is not None else None
    if not phone:
        raise DomainError("phone_required", "请先绑定手机号。")
    return order, party, phone


async def password_challenge(
    session: AsyncSession,
    keys: ServiceKeys,
    sms: SmsChannel,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    now: datetime,
) -> schemas.PasswordChallenge:
    """An SMS code to the caller's phone, to show the contract password again."""
    order, party, phone = await _password_holder(session, keys, principal, order_id)
    challenge_id, sent = await issue_code(
        session,
        keys,
        sms,
        phone=phone,
        now=now,
        purpose=PASSWORD_CODE_PURPOSE,
        subject=_password_subject(order, party),
    )
    return schemas.PasswordChallenge(
        challenge_id=challenge_id,
        sent=sent.sent,
        expires_in=sent.expires_in,
        resend_after=sent.resend_after,
        phone_masked=mask_phone(phone),
    )


async def reveal_password(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    code: schemas.PasswordCode | None,
    now: datetime,
) -> schemas.PasswordOnce:
    """The contract password for the calling party: the first time on asking, afterwards
    only with a fresh SMS code (whoever holds an unlocked phone for a moment does not see
    it). Kept encrypted, never in clear; every showing is in the timeline."""
    order, party, phone = await _password_holder(session, keys, principal, order_id)
    again = party.password_shown_at is not None
    if again:
        if code is None:
            raise DomainError(
                "password_code_required",
                "合同密码已显示过。再次查看前，请获取短信验证码验证本人身份。",
            )
        typed = SigningCode(code.challenge_id, code.code, _password_subject(order, party))
        await checked_code(
            session, keys, phone=phone, typed=typed, purpose=PASSWORD_CODE_PURPOSE, now=now
        )
    else:
        party.password_shown_at = now
    assert party.password_encrypted is not None and order.contract_number is not None
    password = keys.pii.decrypt(party.password_encrypted, field=PASSWORD_FIELD)
    await record_event(
        session,
        order,
        "password_shown",
        actor=mask_name(party.name),
        now=now,
        detail={"again": again},
    )
    return schemas.PasswordOnce(
        contract_number=order.contract_number, password=password, shown_before=again
    )
