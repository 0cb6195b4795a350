"""The register's audit trail: every register action, with who took it (the regulator's
staff id and masked name), what, when, the state before and after, and its document; and
the trail read back by unit or by project.

An entry is written in the same transaction as the action it records, so there is never
an action without its entry nor an entry without its action.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.identity.principal import Principal
from api.identity.staff import staff_identity
from api.register import schemas
from api.register.models import (
    Permit,
    Project,
    RegisterAction,
    RegisterAuditEntry,
    Unit,
    UnitRestriction,
    register_audit_units,
)
from signing.pii import mask_name


@dataclass(frozen=True)
class Actor:
    """Who takes a register action: a regulator, or the platform itself (the demo world,
    data brought over from a city's old system), which has no staff id."""

    staff_id: uuid.UUID | None
    name_masked: str


PLATFORM = Actor(staff_id=None, name_masked="平台")


async def actor_of(session: AsyncSession, principal: Principal) -> Actor:
    """The calling staff member as an audit actor (the guards made sure it is staff)."""
    assert principal.staff_id is not None
    staff = await staff_identity(session, principal.staff_id)
    assert staff is not None  # the session was authenticated just now
    return Actor(staff_id=staff.id, name_masked=mask_name(staff.name))


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: RegisterAction,
    project_id: uuid.UUID,
    subject_id: uuid.UUID,
    unit_ids: Iterable[uuid.UUID],
    now: datetime,
    document_no: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    entry = RegisterAuditEntry(
        id=uuid.uuid4(),
        at=now,
        action=action,
        actor_staff_id=actor.staff_id,
        actor_name_masked=actor.name_masked,
        project_id=project_id,
        subject_id=subject_id,
        document_no=document_no,
        before=before,
        after=after,
    )
    session.add(entry)
    await session.flush()
    touched = sorted(set(unit_ids))
    if touched:
        await session.execute(
            insert(register_audit_units), [{"audit_id": entry.id, "unit_id": u} for u in touched]
        )


def permit_state(permit: Permit, unit_ids: Iterable[uuid.UUID]) -> dict[str, Any]:
    """A permit as an audit entry shows it (JSON-ready)."""
    return {
        "number": permit.number,
        "kind": permit.kind.value,
        "issuer": permit.issuer,
        "valid_from": permit.valid_from.isoformat(),
        "valid_until": permit.valid_until.isoformat(),
        "unit_ids": sorted(str(u) for u in unit_ids),
        "revoked": permit.revoked_at is not None,
    }


def restriction_state(restriction: UnitRestriction) -> dict[str, Any]:
    return {
        "kind": restriction.kind.value,
        "authority": restriction.source,
        "document_no": restriction.document_no,
        "starts_on": restriction.starts_on.isoformat(),
        "ends_on": restriction.ends_on.isoformat() if restriction.ends_on else None,
        "lifted": restriction.lifted_at is not None,
        "lift_authority": restriction.lift_authority,
        "lift_document_no": restriction.lift_document_no,
    }


async def audit_page(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    unit_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
) -> schemas.AuditPage:
    """Entries, newest first, of one unit and/or one project (or all). An unknown unit or
    project is a 404 rather than an empty trail, so a mistyped id is not read as "nothing
    ever happened"."""
    query = select(RegisterAuditEntry)
    if unit_id is not None:
        if await session.get(Unit, unit_id) is None:
            raise DomainError.not_found("户室")
        query = query.join(
            register_audit_units, register_audit_units.c.audit_id == RegisterAuditEntry.id
        ).where(register_audit_units.c.unit_id == unit_id)
    if project_id is not None:
        if await session.get(Project, project_id) is None:
            raise DomainError.not_found("项目")
        query = query.where(RegisterAuditEntry.project_id == project_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(RegisterAuditEntry.at.desc(), RegisterAuditEntry.id)
        .limit(limit)
        .offset(offset)
    )
    return schemas.AuditPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[
            schemas.AuditEntryAnswer(
                id=e.id,
                at=e.at,
                action=e.action,
                actor_staff_id=e.actor_staff_id,
                actor_name_masked=e.actor_name_masked,
                project_id=e.project_id,
                subject_id=e.subject_id,
                document_no=e.document_no,
                before=e.before,
                after=e.after,
            )
            for e in rows
        ],
    )
