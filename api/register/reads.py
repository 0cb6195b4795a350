"""What a regulator reads of the register before acting: projects with their buildings and
permits, a permit with its units and open change, and a building's units each with its
permits, restrictions and what order creation would say of it today."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.register import schemas
from api.register.models import (
    Permit,
    PermitChange,
    PermitChangeStatus,
    PermitKind,
    Project,
    RestrictionKind,
    Unit,
    UnitRestriction,
    permit_units,
)
from api.register.permits import change_unit_ids, open_change_of, permit_unit_ids
from api.register.queries import (
    BLOCKING_RESTRICTIONS,
    ProjectRow,
    building_profile,
    building_units,
    format_area,
    project_buildings,
    project_page,
    unit_sale_facts,
)


def permit_status(permit: Permit, today: date) -> str:
    if permit.revoked_at is not None:
        return "revoked"
    if today < permit.valid_from:
        return "not_yet_valid"
    if today > permit.valid_until:
        return "expired"
    return "in_force"


def restriction_answer(r: UnitRestriction, today: date) -> schemas.RestrictionAnswer:
    in_effect = (
        r.lifted_at is None and r.starts_on <= today and (r.ends_on is None or today <= r.ends_on)
    )
    return schemas.RestrictionAnswer(
        id=r.id,
        unit_id=r.unit_id,
        kind=r.kind,
        authority=r.source,
        document_no=r.document_no,
        starts_on=r.starts_on,
        ends_on=r.ends_on,
        in_effect=in_effect,
        blocks_sale=in_effect
        and (r.kind in BLOCKING_RESTRICTIONS or r.kind is RestrictionKind.property_management),
        created_at=r.created_at,
        lifted_at=r.lifted_at,
        lift_authority=r.lift_authority,
        lift_document_no=r.lift_document_no,
    )


async def change_answer(session: AsyncSession, change: PermitChange) -> schemas.PermitChangeAnswer:
    """The change with its proposed units, and what it adds and removes against the
    permit as it stands now (nothing, once an approved change is applied)."""
    proposed = await change_unit_ids(session, change.id)
    current = await permit_unit_ids(session, change.permit_id)
    return schemas.PermitChangeAnswer(
        id=change.id,
        permit_id=change.permit_id,
        status=change.status,
        valid_from=change.valid_from,
        valid_until=change.valid_until,
        unit_ids=sorted(proposed),
        added_unit_ids=sorted(proposed - current),
        removed_unit_ids=sorted(current - proposed),
        document_no=change.document_no,
        reason=change.reason,
        started_at=change.started_at,
        decided_at=change.decided_at,
        decision_reason=change.decision_reason,
    )


async def permit_answer(
    session: AsyncSession, permit: Permit, *, today: date
) -> schemas.PermitAnswer:
    change = await open_change_of(session, permit.id)
    return schemas.PermitAnswer(
        id=permit.id,
        project_id=permit.project_id,
        kind=permit.kind,
        number=permit.number,
        issuer=permit.issuer,
        valid_from=permit.valid_from,
        valid_until=permit.valid_until,
        status=permit_status(permit, today),
        unit_ids=sorted(await permit_unit_ids(session, permit.id)),
        open_change=await change_answer(session, change) if change is not None else None,
        created_at=permit.created_at,
        revoked_at=permit.revoked_at,
        revoke_document_no=permit.revoke_document_no,
        revoke_reason=permit.revoke_reason,
    )


async def permit_detail(
    session: AsyncSession, permit_id: uuid.UUID, *, today: date
) -> schemas.PermitAnswer:
    permit = await session.get(Permit, permit_id)
    if permit is None:
        raise DomainError.not_found("许可证")
    return await permit_answer(session, permit, today=today)


async def _permit_refs(
    session: AsyncSession, project_ids: list[uuid.UUID], today: date
) -> dict[uuid.UUID, list[schemas.PermitRef]]:
    counts = dict(
        (
            await session.execute(
                select(permit_units.c.permit_id, func.count())
                .join(Permit, Permit.id == permit_units.c.permit_id)
                .where(Permit.project_id.in_(project_ids))
                .group_by(permit_units.c.permit_id)
            )
        ).all()
    )
    open_changes = dict(
        (
            await session.execute(
                select(PermitChange.permit_id, PermitChange.id)
                .join(Permit, Permit.id == PermitChange.permit_id)
                .where(
                    Permit.project_id.in_(project_ids),
                    PermitChange.status == PermitChangeStatus.open,
                )
            )
        ).all()
    )
    refs: dict[uuid.UUID, list[schemas.PermitRef]] = defaultdict(list)
    for permit in await session.scalars(
        select(Permit)
        .where(Permit.project_id.in_(project_ids))
        .order_by(Permit.valid_from, Permit.number)
    ):
        refs[permit.project_id].append(
            schemas.PermitRef(
                id=permit.id,
                number=permit.number,
                kind=permit.kind,
                status=permit_status(permit, today),
                valid_from=permit.valid_from,
                valid_until=permit.valid_until,
                units=counts.get(permit.id, 0),
                open_change_id=open_changes.get(permit.id),
            )
        )
    return refs


async def _projects(
    session: AsyncSession, rows: list[ProjectRow], today: date
) -> list[schemas.RegisterProject]:
    ids = [row.id for row in rows]
    buildings = await project_buildings(session, ids)
    permits = await _permit_refs(session, ids, today)
    return [
        schemas.RegisterProject(
            id=row.id,
            name=row.name,
            district=row.district,
            address=row.address,
            developer_name=row.developer_name,
            developer_uscc=row.developer_uscc,
            buildings=[
                schemas.RegisterBuildingRef(id=b.id, name=b.name, units=b.units)
                for b in buildings[row.id]
            ],
            permits=permits[row.id],
        )
        for row in rows
    ]


async def projects_page(
    session: AsyncSession,
    *,
    today: date,
    limit: int,
    offset: int,
    name_contains: str | None = None,
    district: str | None = None,
) -> schemas.RegisterProjectPage:
    total, rows = await project_page(
        session, limit=limit, offset=offset, name_contains=name_contains, district=district
    )
    return schemas.RegisterProjectPage(
        total=total, limit=limit, offset=offset, items=await _projects(session, rows, today)
    )


async def project_detail(
    session: AsyncSession, project_id: uuid.UUID, *, today: date
) -> schemas.RegisterProjectDetail:
    project = await session.get(Project, project_id)
    if project is None:
        raise DomainError.not_found("项目")
    # The project's row as the paged list shows it, found by its id.
    _, rows = await project_page(session, limit=1, offset=0, project_id=project_id)
    permits = await session.scalars(
        select(Permit)
        .where(Permit.project_id == project_id)
        .order_by(Permit.valid_from, Permit.number)
    )
    return schemas.RegisterProjectDetail(
        project=(await _projects(session, rows, today))[0],
        permits=[await permit_answer(session, p, today=today) for p in permits],
    )


async def _unit_permits(
    session: AsyncSession, building_id: uuid.UUID, today: date
) -> dict[uuid.UUID, list[schemas.UnitPermitRef]]:
    rows = (
        await session.execute(
            select(permit_units.c.unit_id, Permit)
            .join(Permit, Permit.id == permit_units.c.permit_id)
            .join(Unit, Unit.id == permit_units.c.unit_id)
            .where(Unit.building_id == building_id)
            .order_by(Permit.valid_from, Permit.number)
        )
    ).all()
    changing = set(
        await session.scalars(
            select(PermitChange.permit_id).where(
                PermitChange.permit_id.in_({permit.id for _, permit in rows}),
                PermitChange.status == PermitChangeStatus.open,
            )
        )
    )
    found: dict[uuid.UUID, list[schemas.UnitPermitRef]] = defaultdict(list)
    for unit_id, permit in rows:
        found[unit_id].append(
            schemas.UnitPermitRef(
                id=permit.id,
                number=permit.number,
                kind=permit.kind,
                status=permit_status(permit, today),
                change_open=permit.id in changing,
            )
        )
    return found


async def building_units_view(
    session: AsyncSession, building_id: uuid.UUID, *, today: date
) -> schemas.RegisterBuildingUnits:
    building = await building_profile(session, building_id)
    if building is None:
        raise DomainError.not_found("楼栋")
    facts = await unit_sale_facts(session, building_id=building_id, today=today)
    permits = await _unit_permits(session, building_id, today)
    restrictions: dict[uuid.UUID, list[schemas.RestrictionAnswer]] = defaultdict(list)
    for r in await session.scalars(
        select(UnitRestriction)
        .join(Unit, Unit.id == UnitRestriction.unit_id)
        .where(Unit.building_id == building_id, UnitRestriction.lifted_at.is_(None))
        .order_by(UnitRestriction.starts_on, UnitRestriction.created_at)
    ):
        restrictions[r.unit_id].append(restriction_answer(r, today))
    units = []
    for unit in await building_units(session, building_id):
        fact = facts[unit.id]
        units.append(
            schemas.RegisterUnit(
                id=unit.id,
                room_no=unit.room_no,
                unit=unit.unit_label,
                nominal_floor=unit.nominal_floor,
                actual_floor=unit.actual_floor,
                use=unit.use,
                layout=unit.layout,
                building_area=format_area(unit.building_area),
                inner_area=format_area(unit.inner_area),
                shared_area=format_area(unit.shared_area),
                permits=permits[unit.id],
                restrictions=restrictions[unit.id],
                saleable_as=[kind for kind in PermitKind if fact.saleable_as(kind)],
                permit_change_pending=fact.permit_change_pending,
                restricted=fact.restricted,
                property_management=fact.property_management,
                mortgaged=fact.mortgaged,
            )
        )
    return schemas.RegisterBuildingUnits(
        building=schemas.RegisterBuilding(
            id=building.id,
            name=building.name,
            project_id=building.project_id,
            project_name=building.project_name,
            developer_name=building.developer_name,
        ),
        as_of=today,
        units=units,
    )
