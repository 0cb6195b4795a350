"""Parties sign: scanning the order's QR code binds a face-verified citizen to their party
when both their document and their name match it (every scan, refused ones too, is in the
timeline); a face check passed in the last minutes and an SMS code bound to the order, the
party and the document hash; a per-signing certificate and signature; or declining. When
every party has signed, a new home waits for the developer's seal and a resale for its
seller to submit it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.acts import (
    SIGN_PURPOSE,
    Client,
    SigningCode,
    checked_code,
    consent_detail,
    person_act,
    require_recent_face,
)
from api.contracts.models import (
    OPEN_CANCELLATION_STATUSES,
    ContractCancellation,
    ContractKind,
    ContractOrder,
    ContractParty,
    OrderStatus,
)
from api.contracts.pdfs import ContractPdfs, prepare_first_revision, sign_party
from api.contracts.people import name_mismatch, same_person, set_party_phone
from api.contracts.policy import ContractPolicy
from api.contracts.queries import (
    SYSTEM_ACTOR,
    challenge_answer,
    effective_status,
    end_order,
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
from api.db.engine import Database, commit_and_raise
from api.escrow.notices import admit_party, deposit_settled
from api.identity.codes import issue_code
from api.identity.models import IdentityLevel
from api.identity.principal import Principal
from api.identity.verification import CitizenIdentity, citizen_identity
from notifications.sms import SmsChannel
from signing.pii import mask_name
from signing.qr import is_valid_scene


async def _scanned(
    session: AsyncSession, scene: str
) -> tuple[ContractOrder, ContractCancellation | None]:
    """The order a scene opens: an issued order's own, or a cancellation's."""
    unknown = DomainError("scene_unknown", "二维码无效或已失效。")
    if not is_valid_scene(scene):
        raise unknown
    order = await session.scalar(
        select(ContractOrder).where(ContractOrder.scene == scene).with_for_update()
    )
    if order is not None:
        return order, None
    cancellation = await session.scalar(
        select(ContractCancellation).where(ContractCancellation.scene == scene)
    )
    if cancellation is None:
        raise unknown
    return await get_order(session, cancellation.order_id, lock=True), cancellation


async def scan(
    session: AsyncSession, keys: ServiceKeys, principal: Principal, *, scene: str, now: datetime
) -> schemas.ScanAnswer:
    """A citizen scans an order's QR code (or a cancellation's): a face-verified citizen
    whose ID number is a party's is bound to that party and gets the document to read."""
    order, cancellation = await _scanned(session, scene)
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

    if order.status is not OrderStatus.expired and effective_status(order, now) is (
        OrderStatus.expired
    ):
        await expire(session, order, now)
    if order.status is OrderStatus.expired:
        await refuse(DomainError("qr_expired", "二维码已过期，请联系销售人员重新生成。"))
    if order.status is OrderStatus.voided:
        await refuse(DomainError("order_voided", "该合同订单已作废。"))
    if cancellation is not None and cancellation.status not in OPEN_CANCELLATION_STATUSES:
        await refuse(DomainError("cancellation_closed", "该注销申请已结束。"))

    if citizen.identity_level is not IdentityLevel.face_verified:
        await refuse(DomainError("face_verification_required", "请先完成实名认证和人脸核身。"))
    parties = await parties_of(session, order.id)
    party = next((p for p in parties if p.id_number_index == citizen.id_number_index), None)
    if party is None:
        await refuse(DomainError("not_a_party", "您不是该合同的签约方。"))
    assert party is not None
    if not same_person(party.name, citizen.name):
        await refuse(name_mismatch())
    if party.citizen_id is None:
        party.citizen_id = citizen.id
        await admit_party(session, order.id, citizen.id)
    if (phone := citizen.phone(keys)) is not None:
        # Bound: messages go to the phone this citizen proved, not to the one typed.
        set_party_phone(keys, party, phone)
    detail: dict[str, object] = {"party": party.position}
    if cancellation is not None:
        detail["cancellation_id"] = str(cancellation.id)
    await record_event(session, order, "scanned", actor=actor, now=now, detail=detail)
    document_json = cancellation.document_json if cancellation else order.document_json
    document_hash = cancellation.document_hash if cancellation else order.document_hash
    assert document_json is not None and document_hash is not None
    return schemas.ScanAnswer(
        order=await order_answer(session, order, now, parties=parties, my_party_id=party.id),
        party_id=party.id,
        role=party.role,
        document=json.loads(document_json),
        document_hash=document_hash,
        cancellation_id=cancellation.id if cancellation else None,
    )


async def _signable(
    session: AsyncSession,
    principal: Principal,
    order_id: uuid.UUID,
    now: datetime,
    *,
    face_max_age: timedelta | None,
) -> tuple[ContractOrder, ContractParty, CitizenIdentity]:
    """The order and the caller's party, ready for a signature (``face_max_age``: how
    recent the caller's face check must be; None when declining, which needs none)."""
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
    assert principal.citizen_id is not None
    citizen = await citizen_identity(session, principal.citizen_id)
    assert citizen is not None
    if face_max_age is None:
        return order, party, citizen
    # A deposit notice opened at issue (seed 001) must be paid in full before anyone signs.
    if not await deposit_settled(session, order.id):
        raise DomainError(
            "deposit_unpaid", "定金尚未缴清（实缴金额须等于应缴金额），缴清后才能签署合同。"
        )
    if citizen.phone_encrypted is None:
        raise DomainError("phone_required", "请先绑定手机号。")
    require_recent_face(citizen, now=now, max_age=face_max_age)
    return order, party, citizen


def _sign_subject(order: ContractOrder, party: ContractParty) -> str:
    return f"{order.id}:{party.id}:{order.document_hash}"


async def signature_challenge(
    session: AsyncSession,
    keys: ServiceKeys,
    sms: SmsChannel,
    principal: Principal,
    order_id: uuid.UUID,
    *,
    policy: ContractPolicy,
    now: datetime,
) -> schemas.ChallengeAnswer:
    order, party, citizen = await _signable(
        session, principal, order_id, now, face_max_age=policy.face_max_age
    )
    phone = citizen.phone(keys)
    assert phone is not None
    challenge_id, sent = await issue_code(
        session,
        keys,
        sms,
        phone=phone,
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
        challenge_id, sent, phone=phone, document_hash=order.document_hash
    )


async def _first_revision_ready(
    session: AsyncSession,
    database: Database,
    pdfs: ContractPdfs,
    order_id: uuid.UUID,
    now: datetime,
) -> None:
    """Revision 0 of the PDF, before the signing act's transaction, in sessions of its own:
    the worker has usually typeset it since the issue; if not, it is typeset now, before
    ``session`` begins (on SQLite, takes the single write lock) rather than inside it."""
    assert not session.in_transaction(), "the signing act's transaction begins after this"
    await prepare_first_revision(database, pdfs.font, order_id, now)


async def sign(
    session: AsyncSession,
    database: Database,
    keys: ServiceKeys,
    pdfs: ContractPdfs,
    principal: Principal,
    order_id: uuid.UUID,
    data: schemas.SignIn,
    *,
    policy: ContractPolicy,
    client: Client,
    now: datetime,
) -> schemas.Signed:
    await _first_revision_ready(session, database, pdfs, order_id, now)
    order, party, citizen = await _signable(
        session, principal, order_id, now, face_max_age=policy.face_max_age
    )
    phone = citizen.phone(keys)
    assert phone is not None and order.document_hash is not None
    challenge_id = await checked_code(
        session,
        keys,
        phone=phone,
        typed=SigningCode(data.challenge_id, data.code, _sign_subject(order, party)),
        purpose=SIGN_PURPOSE,
        now=now,
    )
    signer, context = person_act(
        keys,
        party,
        document_hash=order.document_hash,
        order_id=str(order.id),
        challenge_id=challenge_id,
        client=client,
        now=now,
    )
    parties = await parties_of(session, order.id)
    # The signing act: the evidence signature and the party's PDF revision, one key; the
    # PDF's boxes are numbered per role (seller-1, buyer-2...).
    ordinal = 1 + sum(1 for p in parties if p.role == party.role and p.position < party.position)
    record = await sign_party(
        session, pdfs, order, signer, context, signer_key=str(party.id), ordinal=ordinal, now=now
    )
    await store_signature(
        session,
        order,
        str(party.id),
        record,
        now=now,
        twice=DomainError("already_signed", "您已签署该合同。"),
    )
    party.signed_at = now
    # From now on the contract's messages (the number and password among them) go to the
    # phone the signer proved, not to the one typed on the order.
    set_party_phone(keys, party, phone)
    order.updated_at = now
    await record_event(
        session,
        order,
        "signed",
        actor=mask_name(party.name),
        now=now,
        detail={
            "party": party.position,
            "role": party.role,
            "challenge_id": challenge_id,
            **consent_detail(citizen),
        },
    )
    if all(p.signed_at is not None for p in parties):
        resale = order.kind is ContractKind.resale
        order.status = OrderStatus.awaiting_submit if resale else OrderStatus.awaiting_seal
        await record_event(session, order, order.status.value, actor=SYSTEM_ACTOR, now=now)
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
    order, party, _ = await _signable(session, principal, order_id, now, face_max_age=None)
    party.declined_at = now
    await end_order(
        session, order, OrderStatus.voided, reason=f"declined: {reason.strip()}", now=now
    )
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
