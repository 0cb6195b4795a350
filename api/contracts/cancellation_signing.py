"""Signing a termination agreement: every party again, with an SMS code bound to the
cancellation, the party and the agreement's hash, after a fresh face check; then, for a
new home, the developer's seal. The signatures are kept apart from the contract's, over
the agreement."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.acts import (
    SEAL_PURPOSE,
    Client,
    SigningCode,
    checked_code,
    company_seals,
    consent_detail,
    person_signs,
    require_recent_face,
)
from api.contracts.cancellation_reads import answer
from api.contracts.cancellations import lock_cancellation, refuse_closed
from api.contracts.keystore import Keystore
from api.contracts.models import (
    CancellationSignature,
    CancellationStatus,
    ContractCancellation,
    ContractKind,
    ContractOrder,
    ContractParty,
)
from api.contracts.policy import ContractPolicy
from api.contracts.queries import (
    SYSTEM_ACTOR,
    challenge_answer,
    my_party,
    parties_of,
    record_event,
    staff_label,
    staff_may_touch,
)
from api.contracts.terms import developer_of
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.identity.codes import issue_code
from api.identity.principal import Principal
from api.identity.staff import StaffIdentity, staff_identity
from api.identity.verification import CitizenIdentity, citizen_identity
from notifications.sms import SmsChannel
from signing.pii import mask_name
from signing.signatures import SignatureRecord

CANCEL_SIGN_PURPOSE = "cancel-sign"


async def _signer(
    session: AsyncSession,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    policy: ContractPolicy,
    now: datetime,
) -> tuple[ContractCancellation, ContractOrder, ContractParty, CitizenIdentity]:
    cancellation, order = await lock_cancellation(session, cancellation_id)
    party = await my_party(session, principal, order)
    refuse_closed(cancellation)
    if cancellation.status is not CancellationStatus.awaiting_signatures:
        raise DomainError(
            "cancellation_not_signable",
            "该解除协议不在待签署状态。",
            cancellation_status=cancellation.status.value,
        )
    if await _signed(session, cancellation, str(party.id)):
        raise DomainError("already_signed", "您已签署该解除协议。")
    assert principal.citizen_id is not None
    citizen = await citizen_identity(session, principal.citizen_id)
    if citizen is None or citizen.phone_encrypted is None:
        raise DomainError("phone_required", "请先绑定手机号。")
    require_recent_face(citizen, now=now, max_age=policy.face_max_age)
    return cancellation, order, party, citizen


async def _signed(session: AsyncSession, cancellation: ContractCancellation, key: str) -> bool:
    return (
        await session.scalar(
            select(CancellationSignature.id).where(
                CancellationSignature.cancellation_id == cancellation.id,
                CancellationSignature.signer_key == key,
            )
        )
        is not None
    )


def _subject(cancellation: ContractCancellation, signer: str) -> str:
    return f"{cancellation.id}:{signer}:{cancellation.document_hash}"


async def _keep(
    session: AsyncSession,
    cancellation: ContractCancellation,
    signer_key: str,
    record: SignatureRecord,
    *,
    now: datetime,
    twice: DomainError,
) -> None:
    session.add(
        CancellationSignature(
            cancellation_id=cancellation.id,
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


async def signature_challenge(
    session: AsyncSession,
    keys: ServiceKeys,
    sms: SmsChannel,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    policy: ContractPolicy,
    now: datetime,
) -> schemas.ChallengeAnswer:
    cancellation, order, party, citizen = await _signer(
        session, principal, cancellation_id, policy=policy, now=now
    )
    phone = citizen.phone(keys)
    assert phone is not None
    challenge_id, sent = await issue_code(
        session,
        keys,
        sms,
        phone=phone,
        now=now,
        purpose=CANCEL_SIGN_PURPOSE,
        subject=_subject(cancellation, str(party.id)),
    )
    await record_event(
        session,
        order,
        "cancellation_code_sent",
        actor=mask_name(party.name),
        now=now,
        detail={"cancellation_id": str(cancellation.id), "party": party.position},
    )
    return challenge_answer(
        challenge_id, sent, phone=phone, document_hash=cancellation.document_hash
    )


async def sign(
    session: AsyncSession,
    keys: ServiceKeys,
    keystore: Keystore,
    principal: Principal,
    cancellation_id: uuid.UUID,
    data: schemas.SignIn,
    *,
    policy: ContractPolicy,
    client: Client,
    now: datetime,
) -> schemas.CancellationSigned:
    cancellation, order, party, citizen = await _signer(
        session, principal, cancellation_id, policy=policy, now=now
    )
    phone = citizen.phone(keys)
    assert phone is not None
    challenge_id = await checked_code(
        session,
        keys,
        phone=phone,
        typed=SigningCode(data.challenge_id, data.code, _subject(cancellation, str(party.id))),
        purpose=CANCEL_SIGN_PURPOSE,
        now=now,
    )
    record = await person_signs(
        keys,
        keystore,
        party,
        document_hash=cancellation.document_hash,
        order_id=str(order.id),
        challenge_id=challenge_id,
        client=client,
        now=now,
    )
    await _keep(
        session,
        cancellation,
        str(party.id),
        record,
        now=now,
        twice=DomainError("already_signed", "您已签署该解除协议。"),
    )
    cancellation.updated_at = now
    detail = {"cancellation_id": str(cancellation.id), "party": party.position}
    await record_event(
        session,
        order,
        "cancellation_signed",
        actor=mask_name(party.name),
        now=now,
        detail={**detail, "challenge_id": challenge_id, **consent_detail(citizen)},
    )
    parties = await parties_of(session, order.id)
    if all([await _signed(session, cancellation, str(p.id)) for p in parties]):
        # A new home's developer seals it next; a resale's starter submits it.
        cancellation.status = (
            CancellationStatus.awaiting_submit
            if order.kind is ContractKind.resale
            else CancellationStatus.awaiting_seal
        )
        await record_event(
            session,
            order,
            f"cancellation_{cancellation.status.value}",
            actor=SYSTEM_ACTOR,
            now=now,
            detail={"cancellation_id": str(cancellation.id)},
        )
    return schemas.CancellationSigned(
        cancellation=await answer(session, cancellation, order, policy=policy, viewer=principal),
        signed_at=now,
    )


async def _sealer(
    session: AsyncSession, principal: Principal, cancellation_id: uuid.UUID
) -> tuple[ContractCancellation, ContractOrder, StaffIdentity]:
    cancellation, order = await lock_cancellation(session, cancellation_id)
    staff_may_touch(principal, order)
    refuse_closed(cancellation)
    if cancellation.status is not CancellationStatus.awaiting_seal:
        raise DomainError(
            "cancellation_not_ready",
            "买受人尚未全部签署解除协议，不能盖章。",
            cancellation_status=cancellation.status.value,
        )
    assert principal.staff_id is not None
    staff = await staff_identity(session, principal.staff_id)
    assert staff is not None
    return cancellation, order, staff


async def seal_challenge(
    session: AsyncSession,
    keys: ServiceKeys,
    sms: SmsChannel,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    now: datetime,
) -> schemas.ChallengeAnswer:
    cancellation, order, staff = await _sealer(session, principal, cancellation_id)
    phone = staff.phone(keys)
    challenge_id, sent = await issue_code(
        session,
        keys,
        sms,
        phone=phone,
        now=now,
        purpose=SEAL_PURPOSE,
        subject=_subject(cancellation, "seal"),
    )
    await record_event(
        session,
        order,
        "cancellation_seal_code_sent",
        actor=staff_label(staff),
        now=now,
        detail={"cancellation_id": str(cancellation.id)},
    )
    return challenge_answer(
        challenge_id, sent, phone=phone, document_hash=cancellation.document_hash
    )


async def seal(
    session: AsyncSession,
    keys: ServiceKeys,
    keystore: Keystore,
    principal: Principal,
    cancellation_id: uuid.UUID,
    data: schemas.SealIn,
    *,
    policy: ContractPolicy,
    client: Client,
    now: datetime,
) -> schemas.CancellationAnswer:
    """The developer seals the agreement; it then waits for the regulator's review."""
    cancellation, order, staff = await _sealer(session, principal, cancellation_id)
    record, challenge_id = await company_seals(
        session,
        keys,
        keystore,
        staff,
        developer_of(order),
        document_hash=cancellation.document_hash,
        order_id=str(order.id),
        typed=SigningCode(data.challenge_id, data.code, _subject(cancellation, "seal")),
        totp_code=data.totp_code,
        client=client,
        now=now,
    )
    await _keep(
        session,
        cancellation,
        "seal",
        record,
        now=now,
        twice=DomainError("already_sealed", "该解除协议已盖章。"),
    )
    cancellation.status = CancellationStatus.awaiting_review
    cancellation.updated_at = now
    await record_event(
        session,
        order,
        "cancellation_sealed",
        actor=staff_label(staff),
        now=now,
        detail={"cancellation_id": str(cancellation.id), "challenge_id": challenge_id},
    )
    return await answer(session, cancellation, order, policy=policy, viewer=principal)
