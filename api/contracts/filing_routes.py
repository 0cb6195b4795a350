"""Filing routes (备案): regulators list the contracts waiting and file or send back each;
the company sees the reason and resubmits."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import filing, schemas
from api.core.clock import Clock
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.identity.guards import regulators_only, staff_only
from api.identity.principal import Principal

ORDER = "合同订单"


class FilingController(Controller):
    tags = ("filing",)

    @get("/api/v1/filings", guards=[staff_only], summary="备案 (regulators: all; staff: own)")
    async def list_filings(
        self,
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
        status: FromQuery[Literal["pending", "rejected", "filed"]] = "pending",
        project_id: Annotated[str | None, Parameter(max_length=64)] = None,
        submitted_from: Annotated[date | None, QueryParameter(name="from")] = None,
        submitted_to: Annotated[date | None, QueryParameter(name="to")] = None,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
    ) -> schemas.OrderList:
        return await filing.list_filings(
            db,
            principal,
            now=clock.now(),
            status=status,
            project_id=parse_id(project_id, what="项目") if project_id else None,
            submitted_from=submitted_from,
            submitted_to=submitted_to,
            limit=limit,
            offset=offset,
        )

    @post(
        "/api/v1/contracts/{order_id:str}/filing/approve",
        status_code=200,
        guards=[regulators_only],
        summary="备案通过 (regulator): 已备案 with a filing number",
    )
    async def approve(
        self,
        order_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
    ) -> schemas.OrderAnswer:
        return await filing.approve(
            db, keys, principal, parse_id(order_id, what=ORDER), now=clock.now()
        )

    @post(
        "/api/v1/contracts/{order_id:str}/filing/reject",
        status_code=200,
        guards=[regulators_only],
        summary="备案退回 (regulator, with a reason)",
    )
    async def reject(
        self,
        order_id: FromPath[str],
        data: JSONBody[schemas.Reason],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
    ) -> schemas.OrderAnswer:
        return await filing.reject(
            db,
            keys,
            principal,
            parse_id(order_id, what=ORDER),
            reason=data.reason,
            now=clock.now(),
        )

    @post(
        "/api/v1/contracts/{order_id:str}/filing/resubmit",
        status_code=200,
        guards=[staff_only],
        summary="重新提交备案 (company admin or the project's agent, with a note)",
    )
    async def resubmit(
        self,
        order_id: FromPath[str],
        data: JSONBody[schemas.FilingNote],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.OrderAnswer:
        return await filing.resubmit(
            db, principal, parse_id(order_id, what=ORDER), note=data.note, now=clock.now()
        )


ROUTES = [FilingController]
