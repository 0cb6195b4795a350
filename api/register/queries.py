"""What other contexts may read of the register, as typed results: whether a unit may be
sold today (permits in force, restrictions in effect), a unit with what a contract names
of it, titles, companies and projects, and the rows of the public building table.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from sqlalchemy import String, func, literal_column, select, type_coerce, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.keys import ServiceKeys
from api.register.models import (
    Building,
    Company,
    Permit,
    PermitChange,
    PermitChangeStatus,
    PermitKind,
    Project,
    ResaleTitle,
    RestrictionKind,
    Unit,
    UnitRestriction,
    permit_change_units,
    permit_units,
)

AREA_SCALE = 10_000  # stored areas are integers of 0.0001 m²


TITLE_CHECK_CODE = "title-check-code"


# Restrictions that stop a sale. A mortgage (抵押) is recorded but does not.
BLOCKING_RESTRICTIONS = frozenset(
    {RestrictionKind.judicial_seizure, RestrictionKind.administrative}
)


def area_units(value: Decimal) -> int:
    """m² as a Decimal -> integer 0.0001 m²; refuses more than 4 decimals."""
    scaled = value * AREA_SCALE
    if scaled != scaled.to_integral_value():
        raise InvalidOperation("more than 4 decimals")
    return int(scaled)


def format_area(units: int) -> str:
    """Integer 0.0001 m² -> "89.12" (two decimals, as surveys are published)."""
    return str((Decimal(units) / AREA_SCALE).quantize(Decimal("0.01")))


@dataclass(frozen=True)
class UnitSaleFacts:
    """What the register says about selling one unit on a given day.

    ``permit_kinds`` are the kinds of permit in force under which the unit may be sold; a
    permit with a change in progress (变更, seed 001 5.4.2) does not count until the change
    is decided: its kind is in ``changing_permit_kinds`` instead, for the units it covers
    and the units the change would add.
    """

    permit_kinds: frozenset[PermitKind]
    blocking_restrictions: frozenset[RestrictionKind]
    property_management: bool
    mortgaged: bool
    changing_permit_kinds: frozenset[PermitKind] = frozenset()

    @property
    def permit_change_pending(self) -> bool:
        return bool(self.changing_permit_kinds)

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


# What a row of unit_sale_facts' query says of its unit: a permit in force, a restriction
# in effect, a permit with an open change.
IN_FORCE, IN_EFFECT, CHANGING = "permit", "restriction", "changing"


def _fact(name: str) -> Any:
    return literal_column(f"'{name}'", String)


async def unit_sale_facts(
    session: AsyncSession,
    *,
    today: date,
    unit_ids: list[uuid.UUID] | None = None,
    building_id: uuid.UUID | None = None,
    project_ids: list[uuid.UUID] | None = None,
) -> SaleFactsByUnit:
    """Permits in force, restrictions in effect and permits being changed for the units in
    scope, in one query.

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
    # The three kinds of fact in one query: asked at each order's creation, issue and
    # sealing, three round trips took 0.83 ms on an idle PostgreSQL, one takes 0.47 ms.
    in_force = (
        select(permit_units.c.unit_id, _fact(IN_FORCE), type_coerce(Permit.kind, String))
        .join(Permit, Permit.id == permit_units.c.permit_id)
        .join(Unit, Unit.id == permit_units.c.unit_id)
        .where(
            scope,
            Permit.revoked_at.is_(None),
            Permit.valid_from <= today,
            Permit.valid_until >= today,
        )
    )
    in_effect = (
        select(UnitRestriction.unit_id, _fact(IN_EFFECT), type_coerce(UnitRestriction.kind, String))
        .join(Unit, Unit.id == UnitRestriction.unit_id)
        .where(
            scope,
            UnitRestriction.lifted_at.is_(None),
            UnitRestriction.starts_on <= today,
            (UnitRestriction.ends_on.is_(None)) | (UnitRestriction.ends_on >= today),
        )
    )
    changes = _units_under_permit_change().subquery()
    changing_now = (
        select(changes.c.unit_id, _fact(CHANGING), type_coerce(changes.c.kind, String))
        .join(Unit, Unit.id == changes.c.unit_id)
        .where(scope)
    )
    permits: dict[uuid.UUID, set[PermitKind]] = defaultdict(set)
    restrictions: dict[uuid.UUID, set[RestrictionKind]] = defaultdict(set)
    changing: dict[uuid.UUID, set[PermitKind]] = defaultdict(set)
    for unit_id, fact, kind in await session.execute(union_all(in_force, in_effect, changing_now)):
        if fact == IN_EFFECT:
            restrictions[unit_id].add(RestrictionKind(kind))
        else:
            (permits if fact == IN_FORCE else changing)[unit_id].add(PermitKind(kind))
    # Most units share the same facts; build each distinct combination once.
    shared: dict[tuple[frozenset[PermitKind], ...], UnitSaleFacts] = {}
    facts = SaleFactsByUnit()
    for unit_id in permits.keys() | restrictions.keys() | changing.keys():
        kinds, held = frozenset(permits[unit_id]), frozenset(changing[unit_id])
        found = frozenset(restrictions[unit_id])
        key = (kinds, held, found)
        if key not in shared:
            shared[key] = UnitSaleFacts(
                permit_kinds=kinds - held,
                blocking_restrictions=found & BLOCKING_RESTRICTIONS,
                property_management=RestrictionKind.property_management in found,
                mortgaged=RestrictionKind.mortgage in found,
                changing_permit_kinds=held,
            )
        facts[unit_id] = shared[key]
    return facts


def _units_under_permit_change() -> Any:
    """Units a permit with an open change covers now or would cover, with that permit's
    kind (open changes are few; the partial unique index finds them)."""
    open_change = PermitChange.status == PermitChangeStatus.open
    covered = (
        select(permit_units.c.unit_id.label("unit_id"), Permit.kind.label("kind"))
        .join(Permit, Permit.id == permit_units.c.permit_id)
        .join(PermitChange, PermitChange.permit_id == Permit.id)
        .where(open_change)
    )
    proposed = (
        select(permit_change_units.c.unit_id.label("unit_id"), Permit.kind.label("kind"))
        .join(PermitChange, PermitChange.id == permit_change_units.c.change_id)
        .join(Permit, Permit.id == PermitChange.permit_id)
        .where(open_change)
    )
    return covered.union(proposed)


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


# ---------------------------------------------------------------- the public building table


@dataclass(frozen=True)
class BuildingProfile:
    id: uuid.UUID
    name: str
    address: str
    structure: str
    floors_above: int
    floors_below: int
    project_id: uuid.UUID
    project_name: str
    developer_name: str
    developer_uscc: str


class UnitRow(NamedTuple):
    """One unit as the building table lists it (a plain row: no ORM identity map)."""

    id: uuid.UUID
    room_no: str
    unit_label: str
    nominal_floor: int
    actual_floor: int
    floor_span: int
    use: str
    layout: str
    building_area: int
    inner_area: int
    shared_area: int


@dataclass(frozen=True)
class ProjectRow:
    id: uuid.UUID
    name: str
    district: str
    address: str
    developer_name: str
    developer_uscc: str


@dataclass(frozen=True)
class BuildingRef:
    id: uuid.UUID
    name: str
    units: int


@dataclass(frozen=True)
class PermitRow:
    number: str
    kind: PermitKind
    valid_from: date
    valid_until: date
    in_force: bool


async def building_profile(session: AsyncSession, building_id: uuid.UUID) -> BuildingProfile | None:
    row = (
        await session.execute(
            select(Building, Project, Company)
            .join(Project, Building.project_id == Project.id)
            .join(Company, Project.company_id == Company.id)
            .where(Building.id == building_id)
        )
    ).first()
    if row is None:
        return None
    building, project, company = row
    return BuildingProfile(
        id=building.id,
        name=building.name,
        address=building.address,
        structure=building.structure,
        floors_above=building.floors_above,
        floors_below=building.floors_below,
        project_id=project.id,
        project_name=project.name,
        developer_name=company.name,
        developer_uscc=company.uscc,
    )


async def building_units(session: AsyncSession, building_id: uuid.UUID) -> list[UnitRow]:
    """A building's units from the lowest floor up. Plain rows, not ORM objects: a
    read-only table of hundreds of units needs no identity map, and skipping it halves
    the time of the request."""
    rows = await session.execute(
        select(*(getattr(Unit, column) for column in UnitRow._fields))
        .where(Unit.building_id == building_id)
        .order_by(Unit.actual_floor, Unit.unit_label, Unit.room_no)
    )
    return [UnitRow(*row) for row in rows]


async def project_page(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    name_contains: str | None = None,
    district: str | None = None,
    project_id: uuid.UUID | None = None,
) -> tuple[int, list[ProjectRow]]:
    """Projects in the order they were registered, with their total for paging."""
    query = select(Project, Company).join(Company, Project.company_id == Company.id)
    if project_id is not None:
        query = query.where(Project.id == project_id)
    if name_contains:
        query = query.where(Project.name.contains(name_contains, autoescape=True))
    if district:
        query = query.where(Project.district == district)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(
        query.order_by(Project.created_at, Project.id).limit(limit).offset(offset)
    )
    return total, [
        ProjectRow(p.id, p.name, p.district, p.address, c.name, c.uscc) for p, c in rows.all()
    ]


async def project_buildings(
    session: AsyncSession, project_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[BuildingRef]]:
    buildings: dict[uuid.UUID, list[BuildingRef]] = defaultdict(list)
    rows = await session.execute(
        select(Building.project_id, Building.id, Building.name, func.count(Unit.id))
        .outerjoin(Unit, Unit.building_id == Building.id)
        .where(Building.project_id.in_(project_ids))
        .group_by(Building.project_id, Building.id, Building.name)
        .order_by(Building.name)
    )
    for project_id, building_id, name, unit_count in rows:
        buildings[project_id].append(BuildingRef(building_id, name, unit_count))
    return buildings


async def project_permits(
    session: AsyncSession, project_ids: list[uuid.UUID], *, today: date
) -> dict[uuid.UUID, list[PermitRow]]:
    permits: dict[uuid.UUID, list[PermitRow]] = defaultdict(list)
    for permit in await session.scalars(
        select(Permit).where(Permit.project_id.in_(project_ids)).order_by(Permit.valid_from)
    ):
        in_force = permit.revoked_at is None and permit.valid_from <= today <= permit.valid_until
        permits[permit.project_id].append(
            PermitRow(permit.number, permit.kind, permit.valid_from, permit.valid_until, in_force)
        )
    return permits


async def project_of_units(
    session: AsyncSession, project_ids: list[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """Unit id -> project id, for every unit of these projects."""
    rows = await session.execute(
        select(Unit.id, Building.project_id)
        .join(Building, Unit.building_id == Building.id)
        .where(Building.project_id.in_(project_ids))
    )
    return dict(rows.all())


async def project_building_area(session: AsyncSession, project_id: uuid.UUID) -> int:
    """The total building area (建筑面积, 0.0001 m²) of every unit of the project: what key
    supervised amounts are computed from (seed 001 5.3: all the units are supervised)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Unit.building_area), 0))
        .join(Building, Unit.building_id == Building.id)
        .where(Building.project_id == project_id)
    )
    return int(total or 0)
