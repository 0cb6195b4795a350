"""A contract comes into being: sealed by the developer (a new home) or submitted by the
seller (a resale), it gets its number and its 8-digit password (查询密码), kept only as a
keyed hash and, for each party, encrypted until shown once; every party gets both by SMS.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
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
from api.identity.principal import Principal
from signing.pii import mask_name

PASSWORD_FIELD = "contract_party.password"  # noqa: S105  (an encryption field label)
PASSWORD_PURPOSE = "contract-password"  # noqa: S105  (a hash domain label)


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
