"""Permits (预售许可 / 现售许可) over sets of units of one project: granting, changing
(变更: started, then approved or rejected by a regulator) and revoking.

Seed 001 5.4.2: once a permit change is started, no new sale of its units may begin until
the change is decided; ``api.register.queries.unit_sale_facts`` reports such units as
held, and order creation and the public building table follow from there.

At most one permit of a kind covers a unit on any day: a grant or change that would
overlap another permit of the same kind (not revoked, dates intersecting) is refused.
Every action is written to the audit trail in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import date, datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.register import audit
from api.register.audit import PLATFORM, Actor, permit_state
from api.register.models import (
    Building,
    Permit,
    PermitChange,
    PermitChangeStatus,
    PermitKind,
    Project,
    RegisterAction,
    Unit,
    permit_change_units,
    permit_units,
)


def _check_dates(valid_from: date, valid_until: date) -> None:
    if valid_until < valid_from:
        raise DomainError("permit_dates_invalid", "许可证有效期结束日期早于开始日期。")


async def _units_of_project(
    session: AsyncSession, project_id: uuid.UUID, unit_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """The units, all existing and all of this project, or a refusal naming the others."""
    wanted = set(unit_ids)
    if not wanted:
        raise DomainError("permit_without_units", "许可证须至少包含一个户室。")
    found = dict(
        (
            await session.execute(
                select(Unit.id, Building.project_id)
                .join(Building, Unit.building_id == Building.id)
                .where(Unit.id.in_(wanted))
            )
        ).all()
    )
    unknown = sorted(str(u) for u in wanted - found.keys())
    if unknown:
        raise DomainError("unit_not_found", "许可证包含不存在的户室。", unit_ids=unknown)
    foreign = sorted(str(u) for u, project in found.items() if project != project_id)
    if foreign:
        raise DomainError(
            "permit_units_invalid", "许可证包含不属于该项目的户室。", unit_ids=foreign
        )
    return wanted


async def _check_no_overlap(
    session: AsyncSession,
    *,
    kind: PermitKind,
    unit_ids: Collection[uuid.UUID],
    valid_from: date,
    valid_until: date,
    other_than: uuid.UUID | None = None,
) -> None:
    query = (
        select(Permit.number, permit_units.c.unit_id)
        .join(permit_units, permit_units.c.permit_id == Permit.id)
        .where(
            Permit.kind == kind,
            Permit.revoked_at.is_(None),
            Permit.valid_from <= valid_until,
            Permit.valid_until >= valid_from,
            permit_units.c.unit_id.in_(list(unit_ids)),
        )
    )
    if other_than is not None:
        query = query.where(Permit.id != other_than)
    clashes = (await session.execute(query)).all()
    if clashes:
        raise DomainError(
            "permit_overlaps",
            "部分户室在该有效期内已有同类许可证。",
            permits=sorted({number for number, _ in clashes}),
            unit_ids=sorted({str(unit) for _, unit in clashes}),
        )


async def permit_unit_ids(session: AsyncSession, permit_id: uuid.UUID) -> set[uuid.UUID]:
    return set(
        await session.scalars(
            select(permit_units.c.unit_id).where(permit_units.c.permit_id == permit_id)
        )
    )


async def change_unit_ids(session: AsyncSession, change_id: uuid.UUID) -> set[uuid.UUID]:
    return set(
        await session.scalars(
            select(permit_change_units.c.unit_id).where(
                permit_change_units.c.change_id == change_id
            )
        )
    )


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
    actor: Actor = PLATFORM,
) -> Permit:
    if await session.get(Project, project_id) is None:
        raise DomainError.not_found("项目")
    _check_dates(valid_from, valid_until)
    units = await _units_of_project(session, project_id, unit_ids)
    number = number.strip()
    if await session.scalar(select(Permit.id).where(Permit.number == number)):
        raise DomainError("permit_exists", f"许可证号 {number} 已存在。")
    await _check_no_overlap(
        session, kind=kind, unit_ids=units, valid_from=valid_from, valid_until=valid_until
    )
    permit = Permit(
        project_id=project_id,
        kind=kind,
        number=number,
        issuer=issuer.strip(),
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=now,
        granted_by=actor.staff_id,
    )
    session.add(permit)
    try:
        await session.flush()
    except IntegrityError:  # the same number granted by a concurrent request
        raise DomainError("permit_exists", f"许可证号 {number} 已存在。") from None
    await session.execute(
        insert(permit_units), [{"permit_id": permit.id, "unit_id": u} for u in units]
    )
    await audit.record(
        session,
        actor=actor,
        action=RegisterAction.permit_granted,
        project_id=project_id,
        subject_id=permit.id,
        unit_ids=units,
        now=now,
        document_no=number,
        after=permit_state(permit, units),
    )
    return permit


async def _locked_permit(session: AsyncSession, permit_id: uuid.UUID) -> Permit:
    """The permit, locked for this transaction (PostgreSQL; SQLite writers hold the
    database write lock already), so two decisions on it queue instead of racing."""
    permit = await session.scalar(
        select(Permit)
        .where(Permit.id == permit_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if permit is None:
        raise DomainError.not_found("许可证")
    return permit


async def open_change_of(session: AsyncSession, permit_id: uuid.UUID) -> PermitChange | None:
    return await session.scalar(
        select(PermitChange).where(
            PermitChange.permit_id == permit_id,
            PermitChange.status == PermitChangeStatus.open,
        )
    )


async def _refuse_open_change(session: AsyncSession, permit: Permit) -> None:
    change = await open_change_of(session, permit.id)
    if change is not None:
        raise DomainError(
            "permit_change_open",
            f"许可证 {permit.number} 有正在办理的变更，请先审核该变更。",
            change_id=str(change.id),
        )


async def start_change(
    session: AsyncSession,
    permit_id: uuid.UUID,
    *,
    document_no: str,
    now: datetime,
    actor: Actor,
    unit_ids: list[uuid.UUID] | None = None,
    valid_from: date | None = None,
    valid_until: date | None = None,
    reason: str = "",
) -> PermitChange:
    """Start a change: from now until it is decided, no sale of the permit's units (nor
    of the units it would add) may begin."""
    permit = await _locked_permit(session, permit_id)
    if permit.revoked_at is not None:
        raise DomainError("permit_revoked", f"许可证 {permit.number} 已撤销，不能变更。")
    await _refuse_open_change(session, permit)
    current = await permit_unit_ids(session, permit.id)
    proposed = (
        await _units_of_project(session, permit.project_id, unit_ids)
        if unit_ids is not None
        else current
    )
    new_from = valid_from or permit.valid_from
    new_until = valid_until or permit.valid_until
    _check_dates(new_from, new_until)
    if (proposed, new_from, new_until) == (current, permit.valid_from, permit.valid_until):
        raise DomainError("permit_change_empty", "变更后的户室和有效期与原许可证相同。")
    await _check_no_overlap(
        session,
        kind=permit.kind,
        unit_ids=proposed,
        valid_from=new_from,
        valid_until=new_until,
        other_than=permit.id,
    )
    change = PermitChange(
        permit_id=permit.id,
        status=PermitChangeStatus.open,
        valid_from=new_from,
        valid_until=new_until,
        document_no=document_no.strip(),
        reason=reason.strip(),
        started_by=actor.staff_id,
        started_at=now,
        decision_reason="",
    )
    session.add(change)
    await session.flush()
    await session.execute(
        insert(permit_change_units), [{"change_id": change.id, "unit_id": u} for u in proposed]
    )
    after = permit_state(permit, proposed) | {
        "valid_from": new_from.isoformat(),
        "valid_until": new_until.isoformat(),
    }
    await audit.record(
        session,
        actor=actor,
        action=RegisterAction.permit_change_started,
        project_id=permit.project_id,
        subject_id=change.id,
        unit_ids=current | proposed,
        now=now,
        document_no=change.document_no,
        before=permit_state(permit, current),
        after=after,
    )
    return change


async def _open_change(session: AsyncSession, change_id: uuid.UUID) -> tuple[PermitChange, Permit]:
    change = await session.get(PermitChange, change_id)
    if change is None:
        raise DomainError.not_found("许可证变更")
    permit = await _locked_permit(session, change.permit_id)
    await session.refresh(change)  # decided meanwhile by the holder of the lock?
    if change.status is not PermitChangeStatus.open:
        raise DomainError(
            "permit_change_decided", "该许可证变更已审核。", change_status=change.status.value
        )
    return change, permit


async def decide_change(
    session: AsyncSession,
    change_id: uuid.UUID,
    *,
    approve: bool,
    now: datetime,
    actor: Actor,
    reason: str = "",
) -> PermitChange:
    """Approve (the permit takes the proposed units and dates at once) or reject (it stays
    as it was); either way its units may be sold again under what the permit now says."""
    change, permit = await _open_change(session, change_id)
    if not approve and not reason.strip():
        raise DomainError("reason_required", "驳回时须填写理由。")
    current = await permit_unit_ids(session, permit.id)
    proposed = await change_unit_ids(session, change.id)
    before = permit_state(permit, current)
    if approve:
        # Checked again: a permit granted since the change started may overlap now.
        await _check_no_overlap(
            session,
            kind=permit.kind,
            unit_ids=proposed,
            valid_from=change.valid_from,
            valid_until=change.valid_until,
            other_than=permit.id,
        )
        await session.execute(delete(permit_units).where(permit_units.c.permit_id == permit.id))
        await session.execute(
            insert(permit_units), [{"permit_id": permit.id, "unit_id": u} for u in proposed]
        )
        permit.valid_from, permit.valid_until = change.valid_from, change.valid_until
    change.status = PermitChangeStatus.approved if approve else PermitChangeStatus.rejected
    change.decided_by = actor.staff_id
    change.decided_at = now
    change.decision_reason = reason.strip()
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action=(
            RegisterAction.permit_change_approved
            if approve
            else RegisterAction.permit_change_rejected
        ),
        project_id=permit.project_id,
        subject_id=change.id,
        unit_ids=current | proposed,
        now=now,
        document_no=change.document_no,
        before=before,
        after=permit_state(permit, proposed if approve else current),
    )
    return change


async def revoke_permit(
    session: AsyncSession,
    permit_id: uuid.UUID,
    *,
    now: datetime,
    actor: Actor = PLATFORM,
    document_no: str = "",
    reason: str = "",
) -> Permit:
    """Revoke (撤销): the permit's units are no longer for sale under it, from now."""
    permit = await _locked_permit(session, permit_id)
    if permit.revoked_at is not None:
        raise DomainError("permit_already_revoked", f"许可证 {permit.number} 已撤销。")
    await _refuse_open_change(session, permit)
    units = await permit_unit_ids(session, permit.id)
    before = permit_state(permit, units)
    permit.revoked_at = now
    permit.revoked_by = actor.staff_id
    permit.revoke_document_no = document_no.strip()
    permit.revoke_reason = reason.strip()
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action=RegisterAction.permit_revoked,
        project_id=permit.project_id,
        subject_id=permit.id,
        unit_ids=units,
        now=now,
        document_no=permit.revoke_document_no,
        before=before,
        after=permit_state(permit, units),
    )
    return permit
