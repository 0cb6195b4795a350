"""The public building table (楼盘表) and project list: each unit's status as anyone may
see it, from the register's facts and the contracts on it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.reads import unit_contract_statuses
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
from api.register.queries import (
    UnitSaleFacts,
    building_profile,
    building_units,
    format_area,
    project_buildings,
    project_of_units,
    project_page,
    project_permits,
    unit_sale_facts,
)

LEGEND = [
    LegendEntry(status=status, label=STATUS_LABELS[status], color=STATUS_COLORS[status])
    for status in UnitPublicStatus
]


def public_status(facts: UnitSaleFacts, contract: str | None = None) -> UnitPublicStatus:
    """A seizure or restriction shows first: the public must see it even on a sold unit.
    Then a filed contract, a signed one, a live order being signed (``contract`` from
    ``api.contracts.reads.unit_contract_statuses``)."""
    if facts.restricted:
        return UnitPublicStatus.restricted
    if contract == "filed":
        return UnitPublicStatus.filed
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
    building = await building_profile(session, building_id)
    if building is None:
        raise DomainError.not_found("楼栋")
    units = await building_units(session, building_id)
    facts = await unit_sale_facts(session, building_id=building_id, today=today)
    signing = await unit_contract_statuses(session, now=now, building_id=building_id)
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
            project_id=str(building.project_id),
            project_name=building.project_name,
            developer=Developer(name=building.developer_name, uscc=building.developer_uscc),
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
    total, projects = await project_page(
        session, limit=limit, offset=offset, name_contains=name_contains, district=district
    )
    project_ids = [project.id for project in projects]
    buildings = await project_buildings(session, project_ids)
    permits = await project_permits(session, project_ids, today=today)
    unit_projects = await project_of_units(session, project_ids)
    facts = await unit_sale_facts(session, project_ids=project_ids, today=today)
    signing = await unit_contract_statuses(session, now=now, project_ids=project_ids)
    statuses: dict[uuid.UUID, list[UnitPublicStatus]] = defaultdict(list)
    for unit_id, project_id in unit_projects.items():
        statuses[project_id].append(public_status(facts[unit_id], signing.get(unit_id)))

    items = [
        PublicProject(
            id=str(project.id),
            name=project.name,
            district=project.district,
            address=project.address,
            developer=Developer(name=project.developer_name, uscc=project.developer_uscc),
            buildings=[
                PublicBuildingRef(id=str(b.id), name=b.name, units=b.units)
                for b in buildings[project.id]
            ],
            permits=[
                PublicPermit(
                    number=permit.number,
                    kind=permit.kind.value,
                    valid_from=permit.valid_from,
                    valid_until=permit.valid_until,
                    in_force=permit.in_force,
                )
                for permit in permits[project.id]
            ],
            counts=_count(statuses[project.id]),
        )
        for project in projects
    ]
    return PublicProjectPage(total=total, limit=limit, offset=offset, items=items)
