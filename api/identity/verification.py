"""Proving who a citizen is: real name (name + ID number, checked by the identity provider)
and face verification (started here, its result fetched by the server from the provider,
never taken from the client); what other contexts may know of a citizen.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import business_date
from api.core.errors import DomainError
from api.core.keys import CITIZEN_PHONE, ServiceKeys
from api.core.validators import (
    ID_TYPE_LABELS,
    IdType,
    checked_id_document,
    normalized_person_name,
)
from api.identity import schemas
from api.identity.consent import require_pi_consent
from api.identity.face_providers import FaceCheck, FaceOutcome, IdCheck
from api.identity.models import (
    Citizen,
    FaceSession,
    FaceStatus,
    IdentityLevel,
)
from api.identity.principal import Principal
from api.identity.profile import caller_citizen, profile

ID_NUMBER_FIELD = "citizen.id_number"


FACE_TTL = timedelta(minutes=7)


async def submit_real_name(
    session: AsyncSession,
    keys: ServiceKeys,
    idcheck: IdCheck,
    principal: Principal,
    *,
    name: str,
    id_number: str,
    id_type: IdType = IdType.resident_id,
    now: datetime,
) -> schemas.Me:
    citizen = await caller_citizen(session, principal)
    require_pi_consent(citizen)
    checked = normalized_person_name(name, min_length=2)
    if checked is None:
        raise DomainError("name_invalid", "请填写证件上的姓名。")
    name = checked
    id_number = checked_id_document(id_type, id_number, today=business_date(now))
    index = keys.id_index(id_number, id_type)
    label = ID_TYPE_LABELS[id_type]
    if citizen.id_number_claim_index is not None:
        if citizen.id_number_claim_index == index and citizen.name == name:
            return await profile(session, principal)
        raise DomainError("real_name_already_set", "该账号已完成实名认证，不能更换身份。")
    # Whether another account holds this number is not asked here: the answer would tell
    # anyone which numbers are registered, and a claim reserves nothing. The number is
    # reserved for this account only once the face check passes for it (``_reserve``).
    result = await idcheck.verify(name, id_number)
    if result != "match":
        # "mismatch" and "not_found" look the same: we are no oracle for the ID database.
        raise DomainError("real_name_mismatch", f"姓名与{label}号码不一致，请核对后重试。")
    protected = keys.protect_id_number(id_number, field=ID_NUMBER_FIELD, id_type=id_type)
    citizen.name = name
    citizen.id_type = id_type
    citizen.id_number_encrypted = protected.encrypted
    citizen.id_number_claim_index = protected.index
    citizen.id_number_masked = protected.masked
    citizen.identity_level = IdentityLevel.real_name
    citizen.real_name_at = now
    await session.flush()
    return await profile(session, principal)


def _face_answer(face: FaceSession, citizen: Citizen) -> schemas.FaceSessionAnswer:
    pending = face.status is FaceStatus.pending
    return schemas.FaceSessionAnswer(
        id=face.id,
        status=face.status,
        url=(face.url or None) if pending else None,
        token=face.biz_token if pending else None,
        sdk=face.sdk,
        expires_at=face.expires_at,
        reason=face.reason,
        identity_level=citizen.identity_level,
    )


async def start_face_session(
    session: AsyncSession,
    keys: ServiceKeys,
    face: FaceCheck,
    principal: Principal,
    *,
    redirect_url: str,
    now: datetime,
) -> schemas.FaceSessionAnswer:
    citizen = await caller_citizen(session, principal)
    require_pi_consent(citizen)
    if citizen.id_number_encrypted is None or citizen.name is None:
        raise DomainError("real_name_required", "请先完成实名认证。")
    id_number = keys.pii.decrypt(citizen.id_number_encrypted, field=ID_NUMBER_FIELD)
    started = await face.start(
        id_number=id_number,
        name=citizen.name,
        redirect_url=redirect_url,
        openid=citizen.wechat_openid,
    )
    row = FaceSession(
        citizen_id=citizen.id,
        biz_token=started.token,
        url=started.url,
        reference=started.reference,
        sdk=started.sdk,
        status=FaceStatus.pending,
        created_at=now,
        expires_at=now + FACE_TTL,
    )
    session.add(row)
    await session.flush()
    return _face_answer(row, citizen)


async def face_session_result(
    session: AsyncSession,
    keys: ServiceKeys,
    face: FaceCheck,
    principal: Principal,
    *,
    face_session_id: uuid.UUID,
    now: datetime,
) -> schemas.FaceSessionAnswer:
    """The outcome, fetched by the server from the provider; the client's word is never taken."""
    citizen = await caller_citizen(session, principal)
    row = await session.scalar(
        select(FaceSession)
        .where(FaceSession.id == face_session_id, FaceSession.citizen_id == citizen.id)
        .with_for_update()
    )
    if row is None:
        raise DomainError.not_found("人脸核身记录")
    if row.status is not FaceStatus.pending:
        return _face_answer(row, citizen)
    assert citizen.id_number_encrypted is not None and citizen.name is not None
    # The provider is asked first, also after our deadline: someone who finished at 6:59
    # and comes back at 7:01 has passed; only an unfinished check expires.
    result = await face.result(
        row.biz_token,
        reference=row.reference,
        id_number=keys.pii.decrypt(citizen.id_number_encrypted, field=ID_NUMBER_FIELD),
        name=citizen.name,
        openid=citizen.wechat_openid,
    )
    if result.status == "pending" and now < row.expires_at:
        return _face_answer(row, citizen)
    _record_face_outcome(keys, row, citizen, result, now)
    if row.status is FaceStatus.passed:
        await _reserve(session, row, citizen)
    await session.flush()
    return _face_answer(row, citizen)


async def _reserve(session: AsyncSession, row: FaceSession, citizen: Citizen) -> None:
    """The face check passed for the claimed document: it becomes this account's (one
    identity, one account). Held by another account, it was the same person's face there
    too: the check is recorded as failed with the reason, and nothing moves."""
    index = citizen.id_number_claim_index
    if citizen.id_number_index == index:
        return
    holder = await session.scalar(
        select(Citizen.id).where(Citizen.id_number_index == index, Citizen.id != citizen.id)
    )
    if holder is not None:
        row.status, row.reason = FaceStatus.failed, "id_number_taken"
        citizen.identity_level = IdentityLevel.real_name
        citizen.face_verified_at = None
        return
    citizen.id_number_index = index
    try:
        await session.flush()
    except IntegrityError:  # another account reserved it a moment ago
        raise DomainError("id_number_taken", "该证件号码已在其他账号完成实名认证。") from None


def _record_face_outcome(
    keys: ServiceKeys, row: FaceSession, citizen: Citizen, result: FaceOutcome, now: datetime
) -> None:
    row.completed_at = now
    if result.status == "passed":
        # The provider's own word on whose face it was must be this citizen's identity.
        same_person = (
            citizen.id_number_claim_index is not None
            and result.id_number
            and keys.id_index(result.id_number, citizen.id_type) == citizen.id_number_claim_index
            and result.name.strip() == (citizen.name or "")
        )
        if same_person:
            row.status = FaceStatus.passed
            citizen.identity_level = IdentityLevel.face_verified
            citizen.face_verified_at = now
        else:
            row.status, row.reason = FaceStatus.failed, "identity_mismatch"
    elif result.status in ("expired", "pending"):
        row.status, row.reason = FaceStatus.expired, "expired"
    else:
        row.status, row.reason = FaceStatus.failed, "face_mismatch"


@dataclass(frozen=True)
class CitizenIdentity:
    """What the contracts context may know of a citizen."""

    id: uuid.UUID
    phone_encrypted: str | None
    name: str | None
    id_number_index: str | None
    identity_level: IdentityLevel
    face_verified_at: datetime | None  # the last face check passed
    # The separate consent to the personal-information notice (kept in signing evidence).
    pi_consent_version: str | None = None
    pi_consent_at: datetime | None = None

    def phone(self, keys: ServiceKeys) -> str | None:
        """The proven phone (where codes and contract messages go), if one is bound."""
        if self.phone_encrypted is None:
            return None
        return keys.phone(self.phone_encrypted, field=CITIZEN_PHONE)


async def citizen_identity(session: AsyncSession, citizen_id: uuid.UUID) -> CitizenIdentity | None:
    citizen = await session.get(Citizen, citizen_id)
    if citizen is None:
        return None
    return CitizenIdentity(
        id=citizen.id,
        phone_encrypted=citizen.phone_encrypted,
        name=citizen.name,
        id_number_index=citizen.id_number_index,
        identity_level=citizen.identity_level,
        face_verified_at=citizen.face_verified_at,
        pi_consent_version=citizen.pi_consent_version,
        pi_consent_at=citizen.pi_consent_at,
    )
