"""The developer seals: the seal keeper's SMS code (and TOTP once enrolled), the company
seal certificate, then the contract is signed: its number, its password (shown once),
the SMS to every buyer and the hand-over to escrow.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.models import (
    ContractCounter,
    ContractKind,
    ContractOrder,
    ContractParty,
    OrderStatus,
)
from api.contracts.pdfs import ContractPdfs, finish
from api.contracts.queries import (
    SYSTEM_ACTOR,
    Client,
    challenge_answer,
    check_unit_saleable,
    client_ip,
    expire_if_due,
    get_order,
    message_parties,
    my_party,
    order_answer,
    parties_of,
    record_event,
    refuse_ended,
    staff_label,
    staff_may_touch,
    store_signature,
)
from api.contracts.terms import (
    ContractTerms,
    terms_of,
)
from api.core.clock import business_date
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import commit_and_raise, insert_into
from api.escrow.accounts import approved_account_for_project
from api.escrow.notices import NoticePayee, create_payment_notices
from api.identity.codes import issue_code, verify_code
from api.identity.principal import Principal
from api.identity.staff import check_staff_totp, staff_identity
from notifications.sms import SmsChannel
from signing.ca import CertificateIssueError, Company, signer_id_hash
from signing.cms import SignerRole, SigningContext
from signing.pii import mask_name
from signing.signatures import seal_sign

PASSWORD_FIELD = "contract_party.password"  # noqa: S105  (an encryption field label)


PASSWORD_PURPOSE = "contract-password"  # noqa: S105  (a hash domain label)


SEAL_PURPOSE = "seal"


async def _sealable(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, now: datetime
) -> ContractOrder:
    order = await get_order(session, order_id, lock=True)
    staff_may_touch(principal, order)
    await expire_if_due(session, order, now)
    refuse_ended(order)
    if order.status is OrderStatus.signed:
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


async def _next_contract_number(session: AsyncSession, kind: ContractKind, now: datetime) -> str:
    prefix = "YS" if kind is ContractKind.presale else "XS"
    name = f"{prefix}{business_date(now).year}"
    await session.execute(
        insert_into(session, ContractCounter).values(name=name, value=0).on_conflict_do_nothing()
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
    pdfs: ContractPdfs,
    principal: Principal,
    order_id: uuid.UUID,
    data: schemas.SealIn,
    *,
    client: Client,
    now: datetime,
) -> schemas.Sealed:
    order = await _sealable(session, principal, order_id, now)
    assert principal.staff_id is not None and order.document_hash is not None
    staff = await staff_identity(session, principal.staff_id)
    assert staff is not None
    await check_staff_totp(session, keys, staff.id, data.totp_code, now)
    verified = await verify_code(
        session,
        keys,
        phone=staff.phone,
        code=data.code,
        now=now,
        purpose=SEAL_PURPOSE,
        subject=_seal_subject(order),
    )
    if verified.challenge_id != data.challenge_id:
        await commit_and_raise(
            session, DomainError("challenge_mismatch", "验证码与盖章请求不匹配，请重新获取。")
        )
    terms = terms_of(order)
    developer = terms.developer
    try:
        company = Company(developer.name, developer.credit_code)
    except CertificateIssueError:
        raise DomainError(
            "seal_unavailable", "企业名称或统一社会信用代码无法用于印章证书，请联系平台。"
        ) from None
    ca = await pdfs.keystore.ca_with_seal(company, now)
    context = SigningContext(
        document_hash=order.document_hash,
        order_id=str(order.id),
        role=SignerRole.SEAL,
        signer_id_hash=signer_id_hash(developer.credit_code, keys.signer_id),
        signing_time=now,
        challenge_id=verified.challenge_id,
        client_ip=client_ip(client.ip),
        user_agent=client.user_agent[:300],
    )
    record = seal_sign(ca, developer.credit_code, context, now)
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
        detail={"challenge_id": verified.challenge_id},
    )
    number, password, parties = await _complete(session, keys, order, terms, now=now)
    # The seal's PDF revision, the platform's stamp and the document time-stamp.
    await finish(
        session, pdfs, order, ca, seal=record, credit_code=developer.credit_code,
        company=developer.name, number=number, now=now,
    )  # fmt: skip
    return schemas.Sealed(
        order=await order_answer(session, order, now, parties=parties),
        contract_number=number,
        password=password,
    )


async def _complete(
    session: AsyncSession,
    keys: ServiceKeys,
    order: ContractOrder,
    terms: ContractTerms,
    *,
    now: datetime,
) -> tuple[str, str, list[ContractParty]]:
    """The sealed contract is signed: its number and password (kept only as a keyed hash,
    and encrypted for each buyer until shown once), the seed's SMS to every buyer with
    both, and the contract handed to escrow for its payment notices."""
    number = await _next_contract_number(session, order.kind, now)
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
    if await approved_account_for_project(session, order.project_id) is not None:
        await create_payment_notices(
            session,
            keys,
            contract_id=order.id,
            contract_number=number,
            project_id=order.project_id,
            company_id=order.company_id,
            buyers=[
                NoticePayee(phone=p.phone, name=p.name, citizen_id=p.citizen_id)
                for p in parties
                if p.phone
            ],
            deposit_fen=order.deposit_fen,
            down_payment_fen=order.down_payment_fen,
            estate=terms.unit.project,
            building=terms.unit.building,
            room=terms.unit.room_no,
            now=now,
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
    if order.status is not OrderStatus.signed or order.contract_number is None:
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
