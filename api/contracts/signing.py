"""Buyers sign: scanning the order's QR code binds a face-verified citizen to their party
(every scan, refused ones too, is in the timeline); an SMS code bound to the order, the
party and the document hash; a per-signing certificate and signature; or declining.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.models import (
    ContractOrder,
    ContractParty,
    OrderStatus,
)
from api.contracts.pdfs import ContractPdfs, sign_party
from api.contracts.queries import (
    OPEN_STATUSES,
    PARTY_ID_FIELD,
    SYSTEM_ACTOR,
    Client,
    challenge_answer,
    client_ip,
    effective_status,
    expire,
    expire_if_due,
    get_order,
    my_party,
    order_answer,
    parties_of,
    record_event,
    refuse_ended,
    store_signature,
)
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import commit_and_raise
from api.identity.codes import issue_code, verify_code
from api.identity.models import IdentityLevel
from api.identity.principal import Principal
from api.identity.verification import citizen_identity
from notifications.sms import SmsChannel
from signing.ca import Signer, signer_id_hash
from signing.cms import SignerRole, SigningContext
from signing.pii import mask_name
from signing.qr import is_valid_scene

SIGN_PURPOSE = "sign"


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
    citizen = await citizen_identity(session, principal.citizen_id)
    assert citizen is not None
    actor = mask_name(citizen.name) if citizen.name else "未实名用户"

    async def refuse(problem: DomainError) -> NoReturn:
        """Every scan is in the timeline, the refused ones too (committed, then raised)."""
        await record_event(
            session, order, "scan_refused", actor=actor, now=now, detail={"reason": problem.code}
        )
        await commit_and_raise(session, problem)

    if order.status in OPEN_STATUSES and effective_status(order, now) is OrderStatus.expired:
        await expire(session, order, now)
    if order.status is OrderStatus.expired:
        await refuse(DomainError("qr_expired", "二维码已过期，请联系销售人员重新生成。"))
    if order.status is OrderStatus.voided:
        await refuse(DomainError("order_voided", "该合同订单已作废。"))

    if citizen.identity_level is not IdentityLevel.face_verified:
        await refuse(DomainError("face_verification_required", "请先完成实名认证和人脸核身。"))
    parties = await parties_of(session, order.id)
    party = next((p for p in parties if p.id_number_index == citizen.id_number_index), None)
    if party is None:
        await refuse(DomainError("not_a_party", "您不是该合同的签约方。"))
    assert party is not None
    if party.citizen_id is None:
        party.citizen_id = citizen.id
    await record_event(
        session, order, "scanned", actor=actor, now=now, detail={"party": party.position}
    )
    assert order.document_json is not None and order.document_hash is not None
    return schemas.ScanAnswer(
        order=await order_answer(session, order, now, parties=parties, my_party_id=party.id),
        party_id=party.id,
        role=party.role,
        document=json.loads(order.document_json),
        document_hash=order.document_hash,
    )


async def _signable(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, now: datetime
) -> tuple[ContractOrder, ContractParty]:
    order = await get_order(session, order_id, lock=True)
    party = await my_party(session, principal, order)
    await expire_if_due(session, order, now)
    refuse_ended(order)
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
) -> schemas.ChallengeAnswer:
    order, party = await _signable(session, principal, order_id, now)
    assert principal.citizen_id is not None
    citizen = await citizen_identity(session, principal.citizen_id)
    if citizen is None or not citizen.phone:
        raise DomainError("phone_required", "请先绑定手机号。")
    challenge_id, sent = await issue_code(
        session,
        keys,
        sms,
        phone=citizen.phone,
        now=now,
        purpose=SIGN_PURPOSE,
        subject=_sign_subject(order, party),
    )
    await record_event(
        session,
        order,
        "sign_code_sent",
        actor=mask_name(party.name),
        now=now,
        detail={"party": party.position},
    )
    return challenge_answer(
        challenge_id, sent, phone=citizen.phone, document_hash=order.document_hash
    )


async def sign(
    session: AsyncSession,
    keys: ServiceKeys,
    pdfs: ContractPdfs,
    principal: Principal,
    order_id: uuid.UUID,
    data: schemas.SignIn,
    *,
    client: Client,
    now: datetime,
) -> schemas.Signed:
    order, party = await _signable(session, principal, order_id, now)
    assert principal.citizen_id is not None and order.document_hash is not None
    citizen = await citizen_identity(session, principal.citizen_id)
    if citizen is None or not citizen.phone:
        raise DomainError("phone_required", "请先绑定手机号。")
    verified = await verify_code(
        session,
        keys,
        phone=citizen.phone,
        code=data.code,
        now=now,
        purpose=SIGN_PURPOSE,
        subject=_sign_subject(order, party),
    )
    if verified.challenge_id != data.challenge_id:
        await commit_and_raise(
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
        client_ip=client_ip(client.ip),
        user_agent=client.user_agent[:300],
    )
    # The signing act: the evidence signature and the party's PDF revision, one key.
    signer = Signer(party.name, id_hash, SignerRole.BUYER)
    record = await sign_party(
        session, pdfs, order, signer, context, signer_key=str(party.id),
        ordinal=party.position + 1, now=now,
    )  # fmt: skip
    await store_signature(
        session,
        order,
        str(party.id),
        record,
        now=now,
        twice=DomainError("already_signed", "您已签署该合同。"),
    )
    party.signed_at = now
    order.updated_at = now
    await record_event(
        session,
        order,
        "signed",
        actor=mask_name(party.name),
        now=now,
        detail={"party": party.position, "role": "buyer", "challenge_id": verified.challenge_id},
    )
    parties = await parties_of(session, order.id)
    if all(p.signed_at is not None for p in parties):
        order.status = OrderStatus.awaiting_seal
        await record_event(session, order, "awaiting_seal", actor=SYSTEM_ACTOR, now=now)
    await session.flush()
    return schemas.Signed(
        order=await order_answer(session, order, now, parties=parties, my_party_id=party.id),
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
) -> schemas.OrderAnswer:
    order, party = await _signable(session, principal, order_id, now)
    party.declined_at = now
    order.status = OrderStatus.voided
    order.ended_at = now
    order.end_reason = f"declined: {reason.strip()}"[:200]
    order.updated_at = now
    await record_event(
        session,
        order,
        "declined",
        actor=mask_name(party.name),
        now=now,
        detail={"party": party.position, "reason": reason.strip()},
    )
    return await order_answer(session, order, now, my_party_id=party.id)


async def document_opened(
    session: AsyncSession,
    principal: Principal,
    order_id: uuid.UUID,
    data: schemas.DocumentOpened,
    *,
    now: datetime,
) -> schemas.OpenedAnswer:
    """A party opened the whole contract text: the timeline (evidence) records who,
    which document and when, every time."""
    order = await get_order(session, order_id, lock=True)
    party = await my_party(session, principal, order)
    if order.document_hash is None:
        raise DomainError("document_not_issued", "合同文本尚未生成。")
    if data.document_hash != order.document_hash:
        raise DomainError("document_changed", "合同文本与您打开的版本不一致，请重新打开。")
    await record_event(
        session,
        order,
        "document_opened",
        actor=mask_name(party.name),
        now=now,
        detail={"party": party.position, "document_hash": order.document_hash},
    )
    return schemas.OpenedAnswer(document_hash=order.document_hash, opened_at=now)
