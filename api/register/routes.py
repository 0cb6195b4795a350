"""The regulator's register (主管部门): permits granted, changed and revoked, restrictions
recorded and lifted, the audit trail, and the projects, buildings and units to act on.

Every route is for regulators only; the rules (``permits``, ``restrictions``, ``audit``,
``reads``) decide, and record each action with its actor in the same transaction.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock, business_date
from api.core.ids import parse_id
from api.identity.guards import regulators_only
from api.identity.principal import Principal
from api.register import permits, reads, restrictions, schemas
from api.register.audit import actor_of, audit_page

Limit = Annotated[int, Parameter(ge=1, le=200)]
Offset = Annotated[int, Parameter(ge=0, le=1_000_000)]
Filter = Annotated[str | None, Parameter(max_length=100)]


def _optional_id(raw: str | None, what: str) -> uuid.UUID | None:
    return parse_id(raw, what=what) if raw else None


class RegisterReadController(Controller):
    path = "/api/v1/register"
    tags = ("register",)
    guards = [regulators_only]  # noqa: RUF012

    @get("/projects", summary="项目 (regulators: buildings and permits of every project)")
    async def projects(
        self,
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        limit: Limit = 20,
        offset: Offset = 0,
        q: Filter = None,
        district: Filter = None,
    ) -> schemas.RegisterProjectPage:
        return await reads.projects_page(
            db,
            today=business_date(clock.now()),
            limit=limit,
            offset=offset,
            name_contains=q,
            district=district,
        )

    @get("/projects/{project_id:str}", summary="项目详情 (permits with units and changes)")
    async def project(
        self,
        project_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
    ) -> schemas.RegisterProjectDetail:
        return await reads.project_detail(
            db, parse_id(project_id, what="项目"), today=business_date(clock.now())
        )

    @get(
        "/buildings/{building_id:str}/units",
        summary="楼盘表 (regulators: each unit's permits, restrictions and sale facts)",
    )
    async def building_units(
        self,
        building_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
    ) -> schemas.RegisterBuildingUnits:
        return await reads.building_units_view(
            db, parse_id(building_id, what="楼栋"), today=business_date(clock.now())
        )

    @get("/permits/{permit_id:str}", summary="许可证 (units, status, open change)")
    async def permit(
        self,
        permit_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
    ) -> schemas.PermitAnswer:
        return await reads.permit_detail(
            db, parse_id(permit_id, what="许可证"), today=business_date(clock.now())
        )

    @get("/audit", summary="登记操作记录 (by unit and/or project, newest first)")
    async def audit(
        self,
        db: NamedDependency[AsyncSession],
        unit_id: Filter = None,
        project_id: Filter = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> schemas.AuditPage:
        return await audit_page(
            db,
            limit=limit,
            offset=offset,
            unit_id=_optional_id(unit_id, "户室"),
            project_id=_optional_id(project_id, "项目"),
        )


class RegisterActionController(Controller):
    path = "/api/v1/register"
    tags = ("register",)
    guards = [regulators_only]  # noqa: RUF012

    @post("/permits", summary="核发许可证 (presale 预售 or spot 现售, over units of a project)")
    async def grant_permit(
        self,
        data: JSONBody[schemas.NewPermit],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.PermitAnswer:
        now = clock.now()
        permit = await permits.grant_permit(
            db,
            project_id=data.project_id,
            kind=data.kind,
            number=data.number,
            issuer=data.issuer,
            valid_from=data.valid_from,
            valid_until=data.valid_until,
            unit_ids=data.unit_ids,
            now=now,
            actor=await actor_of(db, principal),
        )
        return await reads.permit_answer(db, permit, today=business_date(now))

    @post(
        "/permits/{permit_id:str}/changes",
        summary="发起许可证变更 (units or validity; its units cannot be sold until decided)",
    )
    async def start_change(
        self,
        permit_id: FromPath[str],
        data: JSONBody[schemas.NewPermitChange],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.PermitChangeAnswer:
        change = await permits.start_change(
            db,
            parse_id(permit_id, what="许可证"),
            document_no=data.document_no,
            reason=data.reason,
            unit_ids=data.unit_ids,
            valid_from=data.valid_from,
            valid_until=data.valid_until,
            now=clock.now(),
            actor=await actor_of(db, principal),
        )
        return await reads.change_answer(db, change)

    async def _decide(
        self, db: AsyncSession, clock: Clock, principal: Principal, raw: str, reason: str, ok: bool
    ) -> schemas.PermitChangeAnswer:
        change = await permits.decide_change(
            db,
            parse_id(raw, what="许可证变更"),
            approve=ok,
            reason=reason,
            now=clock.now(),
            actor=await actor_of(db, principal),
        )
        return await reads.change_answer(db, change)

    @post("/permit-changes/{change_id:str}/approve", status_code=200, summary="批准许可证变更")
    async def approve_change(
        self,
        change_id: FromPath[str],
        data: JSONBody[schemas.Decision],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.PermitChangeAnswer:
        return await self._decide(db, clock, principal, change_id, data.reason, True)

    @post(
        "/permit-changes/{change_id:str}/reject",
        status_code=200,
        summary="驳回许可证变更 (with a reason; the permit stays as it was)",
    )
    async def reject_change(
        self,
        change_id: FromPath[str],
        data: JSONBody[schemas.Decision],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.PermitChangeAnswer:
        return await self._decide(db, clock, principal, change_id, data.reason, False)

    @post("/permits/{permit_id:str}/revoke", status_code=200, summary="撤销许可证")
    async def revoke_permit(
        self,
        permit_id: FromPath[str],
        data: JSONBody[schemas.PermitRevocation],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.PermitAnswer:
        now = clock.now()
        permit = await permits.revoke_permit(
            db,
            parse_id(permit_id, what="许可证"),
            document_no=data.document_no,
            reason=data.reason,
            now=now,
            actor=await actor_of(db, principal),
        )
        return await reads.permit_answer(db, permit, today=business_date(now))

    @post(
        "/units/{unit_id:str}/restrictions",
        summary="登记限制 (司法查封, 行政限制, 物管用房, 抵押)",
    )
    async def add_restriction(
        self,
        unit_id: FromPath[str],
        data: JSONBody[schemas.NewRestriction],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.RestrictionAnswer:
        now = clock.now()
        today = business_date(now)
        restriction = await restrictions.add_restriction(
            db,
            unit_id=parse_id(unit_id, what="户室"),
            kind=data.kind,
            source=data.authority,
            document_no=data.document_no,
            starts_on=data.starts_on or today,
            ends_on=data.ends_on,
            now=now,
            actor=await actor_of(db, principal),
        )
        return reads.restriction_answer(restriction, today)

    @post(
        "/restrictions/{restriction_id:str}/lift",
        status_code=200,
        summary="解除限制 (解封, 解除限制, 取消物管用房, 注销抵押)",
    )
    async def lift_restriction(
        self,
        restriction_id: FromPath[str],
        data: JSONBody[schemas.RestrictionLifting],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.RestrictionAnswer:
        now = clock.now()
        restriction = await restrictions.lift_restriction(
            db,
            parse_id(restriction_id, what="限制记录"),
            authority=data.authority,
            document_no=data.document_no,
            now=now,
            actor=await actor_of(db, principal),
        )
        return reads.restriction_answer(restriction, business_date(now))


ROUTES = [RegisterReadController, RegisterActionController]
