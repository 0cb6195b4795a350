"""Register rules: developer companies, projects and buildings, permits over sets of units,
restrictions on units (seizures, administrative limits, property-management rooms,
mortgages) and resale titles with their owners.
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
from api.core.validators import is_valid_uscc, resident_id_problem
from api.register.models import (
    Building,
    Company,
    Permit,
    PermitKind,
    Project,
    ResaleTitle,
    RestrictionKind,
    TitleOwner,
    Unit,
    UnitRestriction,
    permit_units,
)
from api.register.queries import TITLE_CHECK_CODE
from signing.pii import normalize_id_number


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


async def grant_permit(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    kind: PermitKind,
    number: str,
    valid_from: date,
    valid_until: date,
    unit_ids: list[uuid.UUID],
    now: datetime,
    issuer: str = "",
) -> Permit:
    if valid_until < valid_from:
        raise DomainError("permit_dates_invalid", "许可证有效期结束日期早于开始日期。")
    if not unit_ids:
        raise DomainError("permit_without_units", "许可证须至少包含一个户室。")
    unit_projects = dict(
        (
            await session.execute(
                select(Unit.id, Building.project_id)
                .join(Building, Unit.building_id == Building.id)
                .where(Unit.id.in_(unit_ids))
            )
        ).all()
    )
    foreign = [str(u) for u in unit_ids if unit_projects.get(u) != project_id]
    if foreign:
        raise DomainError(
            "permit_units_invalid", "许可证包含不属于该项目的户室。", unit_ids=foreign
        )
    permit = Permit(
        project_id=project_id,
        kind=kind,
        number=number,
        issuer=issuer,
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=now,
    )
    session.add(permit)
    try:
        await session.flush()
    except IntegrityError:
        raise DomainError("permit_exists", f"许可证号 {number} 已存在。") from None
    await session.execute(
        permit_units.insert(), [{"permit_id": permit.id, "unit_id": u} for u in set(unit_ids)]
    )
    return permit


async def revoke_permit(session: AsyncSession, permit_id: uuid.UUID, *, now: datetime) -> Permit:
    permit = await session.get(Permit, permit_id)
    if permit is None:
        raise DomainError.not_found("许可证")
    permit.revoked_at = permit.revoked_at or now
    await session.flush()
    return permit


async def add_restriction(
    session: AsyncSession,
    *,
    unit_id: uuid.UUID,
    kind: RestrictionKind,
    source: str,
    starts_on: date,
    now: datetime,
    ends_on: date | None = None,
    document_no: str = "",
) -> UnitRestriction:
    if await session.get(Unit, unit_id) is None:
        raise DomainError.not_found("户室")
    if ends_on is not None and ends_on < starts_on:
        raise DomainError("restriction_dates_invalid", "限制结束日期早于开始日期。")
    restriction = UnitRestriction(
        unit_id=unit_id,
        kind=kind,
        source=source,
        document_no=document_no,
        starts_on=starts_on,
        ends_on=ends_on,
        created_at=now,
    )
    session.add(restriction)
    await session.flush()
    return restriction


async def lift_restriction(
    session: AsyncSession, restriction_id: uuid.UUID, *, now: datetime
) -> UnitRestriction:
    restriction = await session.get(UnitRestriction, restriction_id)
    if restriction is None:
        raise DomainError.not_found("限制记录")
    restriction.lifted_at = restriction.lifted_at or now
    await session.flush()
    return restriction


@dataclass(frozen=True)
class TitleOwnerInput:
    name: str
    id_number: str
    share: str = ""


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
    for owner in owners:
        problem = resident_id_problem(owner.id_number, today=now.date())
        if problem is not None:
            raise DomainError(f"id_number_{problem}", f"权利人 {owner.name} 的身份证号码不正确。")
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
    for position, owner in enumerate(owners):
        protected = keys.protect_id_number(
            normalize_id_number(owner.id_number), field="title_owner.id_number"
        )
        session.add(
            TitleOwner(
                title_id=title.id,
                position=position,
                name=owner.name,
                id_number_encrypted=protected.encrypted,
                id_number_index=protected.index,
                id_number_masked=protected.masked,
                share=owner.share,
            )
        )
    await session.flush()
    return title
