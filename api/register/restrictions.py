"""Restrictions on units: 司法查封 and 行政限制 (no sale while in effect), 物管用房 (a
property-management room, never for sale while marked), 抵押 (a mortgage: recorded, does
not stop a sale); and lifting them, with who lifted them and the lifting document.

Rows are never deleted: lifting sets ``lifted_at``, so the history stays readable, and
every action is written to the audit trail in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.register import audit
from api.register.audit import PLATFORM, Actor, restriction_state
from api.register.models import (
    Building,
    RegisterAction,
    RestrictionKind,
    Unit,
    UnitRestriction,
)


async def _project_of_unit(session: AsyncSession, unit_id: uuid.UUID) -> uuid.UUID:
    project_id = await session.scalar(
        select(Building.project_id)
        .join(Unit, Unit.building_id == Building.id)
        .where(Unit.id == unit_id)
    )
    if project_id is None:
        raise DomainError.not_found("户室")
    return project_id


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
    actor: Actor = PLATFORM,
) -> UnitRestriction:
    """Record a restriction; ``source`` is the ordering authority (court, bureau) or the
    mortgagee. Seizures may stack (轮候查封); a unit is a 物管用房 once, not twice."""
    project_id = await _project_of_unit(session, unit_id)
    if ends_on is not None and ends_on < starts_on:
        raise DomainError("restriction_dates_invalid", "限制结束日期早于开始日期。")
    if kind is RestrictionKind.property_management and await session.scalar(
        select(UnitRestriction.id).where(
            UnitRestriction.unit_id == unit_id,
            UnitRestriction.kind == RestrictionKind.property_management,
            UnitRestriction.lifted_at.is_(None),
        )
    ):
        raise DomainError("unit_already_property_management", "该户室已登记为物业管理用房。")
    restriction = UnitRestriction(
        unit_id=unit_id,
        kind=kind,
        source=source.strip(),
        document_no=document_no.strip(),
        starts_on=starts_on,
        ends_on=ends_on,
        created_at=now,
        created_by=actor.staff_id,
    )
    session.add(restriction)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action=RegisterAction.restriction_added,
        project_id=project_id,
        subject_id=restriction.id,
        unit_ids=[unit_id],
        now=now,
        document_no=restriction.document_no,
        after=restriction_state(restriction),
    )
    return restriction


async def lift_restriction(
    session: AsyncSession,
    restriction_id: uuid.UUID,
    *,
    now: datetime,
    actor: Actor = PLATFORM,
    authority: str = "",
    document_no: str = "",
) -> UnitRestriction:
    """Lift (解封, 解除限制, 注销抵押, or unmark a 物管用房) from now on."""
    restriction = await session.scalar(
        select(UnitRestriction)
        .where(UnitRestriction.id == restriction_id)
        .with_for_update()  # two lifts of one seizure queue; the second is refused
        .execution_options(populate_existing=True)
    )
    if restriction is None:
        raise DomainError.not_found("限制记录")
    if restriction.lifted_at is not None:
        raise DomainError("restriction_already_lifted", "该限制已解除。")
    before = restriction_state(restriction)
    restriction.lifted_at = now
    restriction.lifted_by = actor.staff_id
    restriction.lift_authority = authority.strip()
    restriction.lift_document_no = document_no.strip()
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action=RegisterAction.restriction_lifted,
        project_id=await _project_of_unit(session, restriction.unit_id),
        subject_id=restriction.id,
        unit_ids=[restriction.unit_id],
        now=now,
        document_no=restriction.lift_document_no,
        before=before,
        after=restriction_state(restriction),
    )
    return restriction
