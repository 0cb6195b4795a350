"""Public routes: no login, no personal data, cacheable for a short while."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock, business_date
from api.core.ids import parse_id
from api.public import service
from api.public.schemas import BuildingTable, PublicProjectPage


class PublicController(Controller):
    path = "/api/v1/public"
    tags = ("public",)

    @get("/projects", summary="楼盘列表 (public project list with unit counts by status)")
    async def list_projects(
        self,
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
        q: Annotated[str | None, Parameter(max_length=100)] = None,
        district: Annotated[str | None, Parameter(max_length=100)] = None,
    ) -> PublicProjectPage:
        return await service.list_projects(
            db,
            today=business_date(clock.now()),
            now=clock.now(),
            limit=limit,
            offset=offset,
            name_contains=q,
            district=district,
        )

    @get(
        "/buildings/{building_id:str}/units",
        summary="楼盘表 (a building's units, each with its public status)",
    )
    async def building_units(
        self,
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        building_id: FromPath[str],
    ) -> BuildingTable:
        return await service.building_table(
            db,
            parse_id(building_id, what="楼栋"),
            today=business_date(clock.now()),
            now=clock.now(),
        )
