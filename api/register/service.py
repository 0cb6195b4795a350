"""Register rules: who and what may be sold, on what permit, under which restrictions."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.validators import is_valid_uscc, normalize_id_number, resident_id_problem
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
from api.register.schemas import UNIT_USES, SurveyFile, SurveyRoom, SurveyRowError

AREA_SCALE = 10_000  # stored areas are integers of 0.0001 m²
AREA_TOLERANCE = 100  # 0.01 m², the precision surveys are published in
TITLE_CHECK_CODE = "title-check-code"

# Restrictions that stop a sale. A mortgage (抵押) is recorded but does not.
BLOCKING_RESTRICTIONS = frozenset(
    {RestrictionKind.judicial_seizure, RestrictionKind.administrative}
)


# ---------------------------------------------------------------- companies, projects


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


# ---------------------------------------------------------------- survey import


class SurveyInvalidError(DomainError):
    def __init__(self, errors: list[SurveyRowError]) -> None:
        super().__init__(
            "survey_invalid",
            f"测绘成果文件有 {len(errors)} 处错误，未导入任何数据。",
            errors=[msgspec.to_builtins(e) for e in errors],
        )
        self.errors = errors


@dataclass
class _CheckedRoom:
    row: int
    room: SurveyRoom
    areas: dict[str, int] = field(default_factory=dict)


def parse_survey_file(raw: bytes) -> tuple[SurveyFile, list[_CheckedRoom]]:
    """Decode and check a survey file; raises ``SurveyInvalidError`` naming every bad row."""
    try:
        survey = msgspec.json.decode(raw, type=SurveyFile)
    except msgspec.DecodeError as exc:
        error = SurveyRowError(
            row=None, room_no=None, field=None, code="file_invalid", message=f"文件格式错误：{exc}"
        )
        raise SurveyInvalidError([error]) from None
    errors: list[SurveyRowError] = []
    checked: list[_CheckedRoom] = []
    seen: dict[str, int] = {}
    if not survey.rooms:
        errors.append(_row_error(None, None, "rooms", "no_rooms", "文件中没有户室。"))
    for row, raw_room in enumerate(survey.rooms, start=1):
        try:
            room = msgspec.json.decode(raw_room, type=SurveyRoom)
        except msgspec.DecodeError as exc:
            errors.append(_row_error(row, None, None, "row_invalid", f"第 {row} 行格式错误：{exc}"))
            continue
        row_errors, areas = _check_room(row, room)
        errors.extend(row_errors)
        key = room.room_no.strip()
        if key in seen:
            errors.append(
                _row_error(
                    row,
                    key,
                    "room_no",
                    "duplicate_room_no",
                    f"第 {row} 行户室号 {key} 与第 {seen[key]} 行重复。",
                )
            )
        else:
            seen[key] = row
        checked.append(_CheckedRoom(row=row, room=room, areas=areas))
    if errors:
        raise SurveyInvalidError(errors)
    return survey, checked


def _row_error(
    row: int | None, room_no: str | None, field: str | None, code: str, message: str
) -> SurveyRowError:
    return SurveyRowError(row=row, room_no=room_no, field=field, code=code, message=message)


def area_units(value: Decimal) -> int:
    """m² as a Decimal -> integer 0.0001 m²; refuses more than 4 decimals."""
    scaled = value * AREA_SCALE
    if scaled != scaled.to_integral_value():
        raise InvalidOperation("more than 4 decimals")
    return int(scaled)


def format_area(units: int) -> str:
    """Integer 0.0001 m² -> "89.12" (two decimals, as surveys are published)."""
    return str((Decimal(units) / AREA_SCALE).quantize(Decimal("0.01")))


def _check_room(row: int, room: SurveyRoom) -> tuple[list[SurveyRowError], dict[str, int]]:
    errors: list[SurveyRowError] = []
    no = room.room_no.strip()

    def bad(field_name: str, code: str, message: str) -> None:
        errors.append(_row_error(row, no or None, field_name, code, f"第 {row} 行：{message}"))

    if not no or len(no) > 32:
        bad("room_no", "room_no_invalid", "户室号不能为空且不超过 32 个字符。")
    if room.nominal_floor == 0 or room.actual_floor == 0:
        bad("actual_floor", "floor_invalid", "楼层不能为 0（地下层用负数）。")
    if room.floor_span < 1:
        bad("floor_span", "floor_span_invalid", "实际层数至少为 1。")
    if room.use not in UNIT_USES:
        bad("use", "use_invalid", f"房屋用途须为：{'、'.join(UNIT_USES)}。")
    areas: dict[str, int] = {}
    labels = {
        "building_area": "建筑面积",
        "inner_area": "套内面积",
        "shared_area": "分摊面积",
        "balcony_area": "阳台面积",
    }
    for name, label in labels.items():
        value: Decimal = getattr(room, name)
        if not value.is_finite() or value < 0:
            bad(name, "area_negative", f"{label}不能为负数。")
            continue
        try:
            areas[name] = area_units(value)
        except InvalidOperation:
            bad(name, "area_precision", f"{label}最多保留 4 位小数。")
    if len(areas) == len(labels):
        if areas["building_area"] == 0:
            bad("building_area", "area_zero", "建筑面积不能为 0。")
        if (
            abs(areas["building_area"] - areas["inner_area"] - areas["shared_area"])
            > AREA_TOLERANCE
        ):
            bad(
                "building_area",
                "area_inconsistent",
                "建筑面积应等于套内面积与分摊面积之和（误差不超过 0.01 m²）。",
            )
        if areas["balcony_area"] > areas["inner_area"]:
            bad("balcony_area", "area_inconsistent", "阳台面积不能大于套内面积。")
        coefficient = room.shared_coefficient
        if coefficient is not None:
            if not coefficient.is_finite() or coefficient < 0:
                bad("shared_coefficient", "coefficient_invalid", "分摊系数不能为负数。")
            elif abs(areas["inner_area"] * coefficient - areas["shared_area"]) > AREA_TOLERANCE:
                bad(
                    "shared_coefficient",
                    "area_inconsistent",
                    "套内面积 × 分摊系数 应等于分摊面积（误差不超过 0.01 m²）。",
                )
    return errors, areas


async def import_survey(
    session: AsyncSession, raw: bytes, *, now: datetime
) -> tuple[Building, int, int]:
    """Apply a survey file to its building, all or nothing. Returns (building, created, updated)."""
    survey, rooms = parse_survey_file(raw)
    building = await session.scalar(select(Building).where(Building.survey_no == survey.survey_no))
    if building is None:
        raise SurveyInvalidError(
            [
                _row_error(
                    None,
                    None,
                    "survey_no",
                    "unknown_building",
                    f"测量号 {survey.survey_no} 没有对应的已登记楼栋。",
                )
            ]
        )
    existing = {
        unit.room_no: unit
        for unit in await session.scalars(select(Unit).where(Unit.building_id == building.id))
    }
    created = updated = 0
    for checked in rooms:
        room = checked.room
        values = {
            "unit_label": room.unit.strip(),
            "nominal_floor": room.nominal_floor,
            "actual_floor": room.actual_floor,
            "floor_span": room.floor_span,
            "shared_coefficient": ""
            if room.shared_coefficient is None
            else str(room.shared_coefficient),
            "use": room.use,
            "layout": room.layout,
            "structure": room.structure or building.structure,
            "surveyed_at": now,
            **checked.areas,
        }
        unit = existing.get(room.room_no.strip())
        if unit is None:
            session.add(Unit(building_id=building.id, room_no=room.room_no.strip(), **values))
            created += 1
        else:
            for name, value in values.items():
                setattr(unit, name, value)
            updated += 1
    await session.flush()
    return building, created, updated


# ---------------------------------------------------------------- permits and restrictions


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


# ---------------------------------------------------------------- what may be sold


@dataclass(frozen=True)
class UnitSaleFacts:
    """What the register says about selling one unit on a given day."""

    permit_kinds: frozenset[PermitKind]
    blocking_restrictions: frozenset[RestrictionKind]
    property_management: bool
    mortgaged: bool

    @property
    def restricted(self) -> bool:
        return bool(self.blocking_restrictions)

    def saleable_as(self, kind: PermitKind) -> bool:
        return kind in self.permit_kinds and not self.restricted and not self.property_management


class SaleFactsByUnit(dict[uuid.UUID, UnitSaleFacts]):
    """Facts per unit; a unit with no permit and no restriction gets ``NO_FACTS``."""

    def __missing__(self, unit_id: uuid.UUID) -> UnitSaleFacts:
        return NO_FACTS


NO_FACTS = UnitSaleFacts(
    permit_kinds=frozenset(),
    blocking_restrictions=frozenset(),
    property_management=False,
    mortgaged=False,
)


async def unit_sale_facts(
    session: AsyncSession,
    *,
    today: date,
    unit_ids: list[uuid.UUID] | None = None,
    building_id: uuid.UUID | None = None,
    project_ids: list[uuid.UUID] | None = None,
) -> SaleFactsByUnit:
    """Permits in force and restrictions in effect for the units in scope, in two queries.

    Scope by building or project when showing a table: a 300-unit ``IN (...)`` list costs
    more than the rest of the request.
    """
    if unit_ids is not None:
        scope = Unit.id.in_(unit_ids)
    elif building_id is not None:
        scope = Unit.building_id == building_id
    elif project_ids is not None:
        scope = Unit.building_id.in_(
            select(Building.id).where(Building.project_id.in_(project_ids)).scalar_subquery()
        )
    else:
        raise ValueError("unit_sale_facts needs a scope")
    permits: dict[uuid.UUID, set[PermitKind]] = defaultdict(set)
    rows = await session.execute(
        select(permit_units.c.unit_id, Permit.kind)
        .join(Permit, Permit.id == permit_units.c.permit_id)
        .join(Unit, Unit.id == permit_units.c.unit_id)
        .where(
            scope,
            Permit.revoked_at.is_(None),
            Permit.valid_from <= today,
            Permit.valid_until >= today,
        )
    )
    for unit_id, kind in rows:
        permits[unit_id].add(kind)
    restrictions: dict[uuid.UUID, set[RestrictionKind]] = defaultdict(set)
    rows = await session.execute(
        select(UnitRestriction.unit_id, UnitRestriction.kind)
        .join(Unit, Unit.id == UnitRestriction.unit_id)
        .where(
            scope,
            UnitRestriction.lifted_at.is_(None),
            UnitRestriction.starts_on <= today,
            (UnitRestriction.ends_on.is_(None)) | (UnitRestriction.ends_on >= today),
        )
    )
    for unit_id, kind in rows:
        restrictions[unit_id].add(kind)
    # Most units share the same facts; build each distinct combination once.
    shared: dict[tuple[frozenset[PermitKind], frozenset[RestrictionKind]], UnitSaleFacts] = {}
    facts = SaleFactsByUnit()
    for unit_id in permits.keys() | restrictions.keys():
        key = (frozenset(permits[unit_id]), frozenset(restrictions[unit_id]))
        if key not in shared:
            shared[key] = UnitSaleFacts(
                permit_kinds=key[0],
                blocking_restrictions=key[1] & BLOCKING_RESTRICTIONS,
                property_management=RestrictionKind.property_management in key[1],
                mortgaged=RestrictionKind.mortgage in key[1],
            )
        facts[unit_id] = shared[key]
    return facts


# ---------------------------------------------------------------- resale titles


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


async def find_title(
    session: AsyncSession, keys: ServiceKeys, *, certificate_no: str, check_code: str
) -> ResaleTitle | None:
    """The title when number and check code match (房源验证), else None."""
    title = await session.scalar(
        select(ResaleTitle).where(ResaleTitle.certificate_no == certificate_no.strip())
    )
    if title is None or not keys.credential_matches(
        TITLE_CHECK_CODE, check_code, title.check_code_hash
    ):
        return None
    return title


# ---------------------------------------------------------------- lookups for other contexts


async def get_company(session: AsyncSession, company_id: uuid.UUID) -> Company | None:
    return await session.get(Company, company_id)


async def get_projects(session: AsyncSession, project_ids: list[uuid.UUID]) -> list[Project]:
    """The projects with these ids that exist, ordered by name."""
    if not project_ids:
        return []
    rows = await session.scalars(
        select(Project).where(Project.id.in_(project_ids)).order_by(Project.name)
    )
    return list(rows)


@dataclass(frozen=True)
class UnitContext:
    """A unit with what a contract names of it: building, project, developer."""

    unit_id: uuid.UUID
    room_no: str
    unit_label: str
    use: str
    building_area: int
    inner_area: int
    building_id: uuid.UUID
    building_name: str
    building_address: str
    project_id: uuid.UUID
    project_name: str
    company_id: uuid.UUID
    company_name: str
    company_uscc: str


async def unit_context(session: AsyncSession, unit_id: uuid.UUID) -> UnitContext | None:
    row = (
        await session.execute(
            select(Unit, Building, Project, Company)
            .join(Building, Unit.building_id == Building.id)
            .join(Project, Building.project_id == Project.id)
            .join(Company, Project.company_id == Company.id)
            .where(Unit.id == unit_id)
        )
    ).first()
    if row is None:
        return None
    unit, building, project, company = row
    return UnitContext(
        unit_id=unit.id,
        room_no=unit.room_no,
        unit_label=unit.unit_label,
        use=unit.use,
        building_area=unit.building_area,
        inner_area=unit.inner_area,
        building_id=building.id,
        building_name=building.name,
        building_address=building.address,
        project_id=project.id,
        project_name=project.name,
        company_id=company.id,
        company_name=company.name,
        company_uscc=company.uscc,
    )
