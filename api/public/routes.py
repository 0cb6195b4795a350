"""Public routes: no login, no personal data. Building tables and project lists may be
cached for a while; contract verification never (it is asked with a password)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock, business_date
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.core.ratelimit import RateLimiter
from api.public import buildings, verification
from api.public.schemas import BuildingTable, PublicProjectPage, VerifyAnswer

# Wrong contract passwords allowed per contract number and per IP address, per hour.
VERIFY_FAILURES_PER_NUMBER = 5
VERIFY_FAILURES_PER_IP = 20


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
        return await buildings.list_projects(
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
        return await buildings.building_table(
            db,
            parse_id(building_id, what="楼栋"),
            today=business_date(clock.now()),
            now=clock.now(),
        )

    @get("/verify", summary="合同查询 (number + password)")
    async def verify(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[AsyncSession],
        keys: NamedDependency[ServiceKeys],
        limiter: NamedDependency[RateLimiter],
        number: Annotated[str, Parameter(min_length=1, max_length=32)],
        password: Annotated[str, Parameter(min_length=1, max_length=16)],
    ) -> Response[VerifyAnswer]:
        ip = request.client.host if request.client else "unknown"
        key = number.strip().upper()
        hour = 3600
        await limiter.peek(
            "verify-number", key, limit=VERIFY_FAILURES_PER_NUMBER, window_seconds=hour
        )
        await limiter.peek("verify-ip", ip, limit=VERIFY_FAILURES_PER_IP, window_seconds=hour)
        answer = await verification.verify_contract(db, keys, number=number, password=password)
        if not answer.genuine:
            await limiter.hit("verify-number", key, limit=10**9, window_seconds=hour)
            await limiter.hit("verify-ip", ip, limit=10**9, window_seconds=hour)
        return Response(answer, headers={"Cache-Control": "no-store"})


ROUTES = [PublicController]
