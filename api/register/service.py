"""Register rules: developer companies, projects and buildings, and resale titles with
their owners. Permits live in ``permits``, restrictions in ``restrictions``, each action's
audit entry in ``audit``; their platform-level calls stay reachable from here for the
demo world, the command line and tests (``register.grant_permit(...)``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.validators import IdType, checked_id_document, is_valid_uscc
from api.register.models import (
    Building,
    Company,
    Project,
    ResaleTitle,
    TitleOwner,
    Unit,
)
from api.register.permits import grant_permit, revoke_permit
from api.register.queries import TITLE_CHECK_CODE
from api.register.restrictions import add_restriction, lift_restriction
from api.register.titles import TITLE_OWNER_ID_FIELD

__all__ = [
    "TitleOwnerInput",
    "add_restriction",
    "create_building",
    "create_company",
    "create_project",
    "grant_permit",
    "lift_restriction",
    "register_title",
    "revoke_permit",
]


async def create_company(
    session: AsyncSession,
    *,
    name: str,
    uscc: str,
    now: datetime,
    legal_representative: str = "",
    phone: str = "",
    address: str = "",
) -> Company:
    uscc = uscc.strip().upper()
    if not is_valid_uscc(uscc):
        raise DomainError("uscc_invalid", "统一社会信用代码格式或校验位不正确。")
    existing = await session.scalar(select(Company).where(Company.uscc == uscc))
    if existing is not None:
        raise DomainError("company_exists", "该统一社会信用代码的企业已登记。")
    company = Company(
        name=name,
        uscc=uscc,
        legal_representative=legal_representative,
        phone=phone,
        address=address,
        created_at=now,
    )
    session.add(company)
    await session.flush()
    return company


async def create_project(
    session: AsyncSession,
    *,
    company_id: uuid.UUID,
    name: str,
    now: datetime,
    district: str = "",
    address: str = "",
) -> Project:
    if await session.get(Company, company_id) is None:
        raise DomainError.not_found("企业")
    project = Project(
        company_id=company_id, name=name, district=district, address=address, created_at=now
    )
    session.add(project)
    await session.flush()
    return project


async def create_building(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    name: str,
    survey_no: str,
    now: datetime,
    address: str = "",
    structure: str = "",
    floors_above: int = 0,
    floors_below: int = 0,
) -> Building:
    if await session.get(Project, project_id) is None:
        raise DomainError.not_found("项目")
    if await session.scalar(select(Building.id).where(Building.survey_no == survey_no)):
        raise DomainError("building_exists", f"测量号 {survey_no} 的楼栋已登记。")
    building = Building(
        project_id=project_id,
        name=name,
        survey_no=survey_no,
        address=address,
        structure=structure,
        floors_above=floors_above,
        floors_below=floors_below,
        created_at=now,
    )
    session.add(building)
    await session.flush()
    return building


@dataclass(frozen=True)
class TitleOwnerInput:
    name: str
    id_number: str
    share: str = ""
    id_type: IdType = IdType.resident_id


async def register_title(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    unit_id: uuid.UUID,
    certificate_no: str,
    check_code: str,
    registered_on: date,
    owners: list[TitleOwnerInput],
    now: datetime,
) -> ResaleTitle:
    if await session.get(Unit, unit_id) is None:
        raise DomainError.not_found("户室")
    if not owners:
        raise DomainError("title_without_owner", "不动产权证须至少有一名权利人。")
    numbers = [
        checked_id_document(
            owner.id_type, owner.id_number, today=now.date(), whose=f"权利人 {owner.name} 的"
        )
        for owner in owners
    ]
    title = ResaleTitle(
        unit_id=unit_id,
        certificate_no=certificate_no.strip(),
        check_code_hash=keys.credential_hash(TITLE_CHECK_CODE, check_code),
        registered_on=registered_on,
        created_at=now,
    )
    session.add(title)
    try:
        await session.flush()
    except IntegrityError:
        raise DomainError("title_exists", "该不动产权证号已登记。") from None
    for position, (owner, number) in enumerate(zip(owners, numbers, strict=True)):
        protected = keys.protect_id_number(
            number, field=TITLE_OWNER_ID_FIELD, id_type=owner.id_type
        )
        session.add(
            TitleOwner(
                title_id=title.id,
                position=position,
                name=owner.name,
                id_type=owner.id_type,
                id_number_encrypted=protected.encrypted,
                id_number_index=protected.index,
                id_number_masked=protected.masked,
                share=owner.share,
            )
        )
    await session.flush()
    return title
