"""The caller's own account: the rows behind a ``Principal`` and ``GET /api/v1/me``."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.core.keys import CITIZEN_PHONE, ServiceKeys
from api.identity import schemas
from api.identity.models import (
    Citizen,
    PrincipalKind,
    StaffMember,
    staff_projects,
)
from api.identity.principal import Principal
from api.register.queries import get_company, get_projects


def set_citizen_phone(keys: ServiceKeys, citizen: Citizen, phone: str) -> None:
    protected = keys.protect_phone(phone, field=CITIZEN_PHONE)
    citizen.phone_index = protected.index
    citizen.phone_encrypted = protected.encrypted
    citizen.phone_masked = protected.masked


async def caller_citizen(session: AsyncSession, principal: Principal) -> Citizen:
    citizen = await session.get(Citizen, principal.citizen_id) if principal.citizen_id else None
    if citizen is None:
        raise DomainError("citizen_only", "仅限个人用户使用。")
    return citizen


async def caller_staff(session: AsyncSession, principal: Principal) -> StaffMember:
    staff = await session.get(StaffMember, principal.staff_id) if principal.staff_id else None
    if staff is None:
        raise DomainError("staff_only", "仅限工作人员使用。")
    return staff


async def project_refs(session: AsyncSession, staff_id: uuid.UUID) -> list[schemas.ProjectRef]:
    ids = list(
        await session.scalars(
            select(staff_projects.c.project_id).where(staff_projects.c.staff_id == staff_id)
        )
    )
    return [schemas.ProjectRef(id=p.id, name=p.name) for p in await get_projects(session, ids)]


async def profile(session: AsyncSession, principal: Principal) -> schemas.Me:
    if principal.kind is PrincipalKind.citizen:
        citizen = await caller_citizen(session, principal)
        return schemas.Me(
            kind=PrincipalKind.citizen,
            id=citizen.id,
            roles=["citizen"],
            phone_masked=citizen.phone_masked,
            name=citizen.name,
            id_number_masked=citizen.id_number_masked,
            id_type=citizen.id_type if citizen.id_number_claim_index else None,
            identity_level=citizen.identity_level,
            wechat_bound=citizen.wechat_openid is not None,
            pi_consent_version=citizen.pi_consent_version,
            pi_consent_at=citizen.pi_consent_at,
        )
    staff = await caller_staff(session, principal)
    company = await get_company(session, staff.company_id) if staff.company_id else None
    return schemas.Me(
        kind=PrincipalKind.staff,
        id=staff.id,
        roles=[staff.role.value],
        phone_masked=staff.phone_masked,
        name=staff.name,
        company=schemas.CompanyRef(id=company.id, name=company.name) if company else None,
        projects=await project_refs(session, staff.id),
        totp_enabled=staff.totp_secret_encrypted is not None,
        disabled=staff.disabled_at is not None,
    )
