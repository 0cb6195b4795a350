"""The public building table: each unit's status as anyone may see it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import service as contracts
from api.core.errors import DomainError
from api.public.schemas import (
    STATUS_COLORS,
    STATUS_LABELS,
    BuildingTable,
    Developer,
    LegendEntry,
    PublicBuilding,
    PublicBuildingRef,
    PublicPermit,
    PublicProject,
    PublicProjectPage,
    PublicUnit,
    StatusCounts,
    UnitPublicStatus,
)
from api.register.models import Building, Company, Permit, Project, Unit
from api.register.service import UnitSaleFacts, format_area, unit_sale_facts

LEGEND = [
    LegendEntry(status=status, label=STATUS_LABELS[status], color=STATUS_COLORS[status])
    for status in UnitPublicStatus
]


def public_status(facts: UnitSaleFacts, contract: str | None = None) -> UnitPublicStatus:
    """A seizure or restriction shows first: the public must see it even on a sold unit.
    Then a signed contract, then a live order being signed (``contract`` from
    ``api.contracts.service.unit_contract_statuses``)."""
    if facts.restricted:
        return UnitPublicStatus.restricted
    if contract == "signed":
        return UnitPublicStatus.signed
    if contract == "signing":
        return UnitPublicStatus.signing
    if facts.property_management or not facts.permit_kinds:
        return UnitPublicStatus.not_for_sale
    return UnitPublicStatus.available


def _count(statuses: list[UnitPublicStatus]) -> StatusCounts:
    counts: dict[str, int] = defaultdict(int)
    for status in statuses:
        counts[status.value] += 1
    return StatusCounts(**counts)


async def building_table(
    session: AsyncSession, building_id: uuid.UUID, *, today: date, now: datetime
) -> BuildingTable:
    row = (
        await session.execute(
            select(Building, Project, Company)
            .join(Project, Building.project_id == Project.id)
            .join(Company, Project.company_id == Company.id)
            .where(Building.id == building_id)
        )
    ).first()
    if row is None:
        raise DomainError.not_found("楼栋")
    building, project, company = row
    # Plain rows, not ORM objects: a read-only table of hundreds of units needs no
    # identity map, and skipping it halves the time of this request.
    units = (
        await session.execute(
            select(
                Unit.id,
                Unit.room_no,
                Unit.unit_label,
                Unit.nominal_floor,
                Unit.actual_floor,
                Unit.floor_span,
                Unit.use,
                Unit.layout,
                Unit.building_area,
                Unit.inner_area,
                Unit.shared_area,
            )
            .where(Unit.building_id == building_id)
            .order_by(Unit.actual_floor, Unit.unit_label, Unit.room_no)
        )
    ).all()
    facts = await unit_sale_facts(session, building_id=building_id, today=today)
    signing = await contracts.unit_contract_statuses(session, now=now, building_id=building_id)
    public_units = []
    for unit in units:
        status = public_status(facts[unit.id], signing.get(unit.id))
        public_units.append(
            PublicUnit(
                id=str(unit.id),
                room_no=unit.room_no,
                unit=unit.unit_label,
                nominal_floor=unit.nominal_floor,
                actual_floor=unit.actual_floor,
                floor_span=unit.floor_span,
                use=unit.use,
                layout=unit.layout,
                building_area=format_area(unit.building_area),
                inner_area=format_area(unit.inner_area),
                shared_area=format_area(unit.shared_area),
                status=status,
                status_label=STATUS_LABELS[status],
            )
        )
    return BuildingTable(
        building=PublicBuilding(
            id=str(building.id),
            name=building.name,
            address=building.address,
            structure=building.structure,
            floors_above=building.floors_above,
            floors_below=building.floors_below,
            project_id=str(project.id),
            project_name=project.name,
            developer=Developer(name=company.name, uscc=company.uscc),
        ),
        as_of=today,
        counts=_count([u.status for u in public_units]),
        legend=LEGEND,
        units=public_units,
    )


async def list_projects(
    session: AsyncSession,
    *,
    today: date,
    now: datetime,
    limit: int,
    offset: int,
    name_contains: str | None = None,
    district: str | None = None,
) -> PublicProjectPage:
    query = select(Project, Company).join(Company, Project.company_id == Company.id)
    if name_contains:
        query = query.where(Project.name.contains(name_contains, autoescape=True))
    if district:
        query = query.where(Project.district == district)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = (
        await session.execute(
            query.order_by(Project.created_at, Project.id).limit(limit).offset(offset)
        )
    ).all()
    project_ids = [project.id for project, _ in rows]

    buildings: dict[uuid.UUID, list[PublicBuildingRef]] = defaultdict(list)
    building_rows = await session.execute(
        select(Building.project_id, Building.id, Building.name, func.count(Unit.id))
        .outerjoin(Unit, Unit.building_id == Building.id)
        .where(Building.project_id.in_(project_ids))
        .group_by(Building.project_id, Building.id, Building.name)
        .order_by(Building.name)
    )
    for project_id, building_id, name, unit_count in building_rows:
        buildings[project_id].append(
            PublicBuildingRef(id=str(building_id), name=name, units=unit_count)
        )

    permits: dict[uuid.UUID, list[PublicPermit]] = defaultdict(list)
    for permit in await session.scalars(
        select(Permit).where(Permit.project_id.in_(project_ids)).order_by(Permit.valid_from)
    ):
        in_force = permit.revoked_at is None and permit.valid_from <= today <= permit.valid_until
        permits[permit.project_id].append(
            PublicPermit(
                number=permit.number,
                kind=permit.kind.value,
                valid_from=permit.valid_from,
                valid_until=permit.valid_until,
                in_force=in_force,
            )
        )

    unit_projects = dict(
        (
            await session.execute(
                select(Unit.id, Building.project_id)
                .join(Building, Unit.building_id == Building.id)
                .where(Building.project_id.in_(project_ids))
            )
        ).all()
    )
    facts = await unit_sale_facts(session, project_ids=project_ids, today=today)
    signing = await contracts.unit_contract_statuses(session, now=now, project_ids=project_ids)
    statuses: dict[uuid.UUID, list[UnitPublicStatus]] = defaultdict(list)
    for unit_id, project_id in unit_projects.items():
        statuses[project_id].append(public_status(facts[unit_id], signing.get(unit_id)))

    items = [
        PublicProject(
            id=str(project.id),
            name=project.name,
            district=project.district,
            address=project.address,
            developer=Developer(name=company.name, uscc=company.uscc),
            buildings=buildings[project.id],
            permits=permits[project.id],
            counts=_count(statuses[project.id]),
        )
        for project, company in rows
    ]
    return PublicProjectPage(total=total, limit=limit, offset=offset, items=items)
