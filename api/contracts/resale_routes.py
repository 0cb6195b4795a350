"""Resale routes (存量房): an owner checks their title and fills the contract; the seller
submits it once every party signed; a regulator records the transfer of the title. Issuing,
voiding, scanning and signing are the contract routes every order uses; "我的签署" lists
what waits for my signature, new homes' and resales' alike."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import reads, resale, schemas
from api.contracts.pdfs import ContractPdfs
from api.core.clock import Clock
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.identity.guards import citizens_only, regulators_only
from api.identity.principal import Principal

ORDER = "合同订单"


class ResaleController(Controller):
    path = "/api/v1/resale"
    tags = ("resale",)
    guards = [citizens_only]  # noqa: RUF012

    @post("/title-checks", status_code=200, summary="房源验证 (title number and check code)")
    async def check_title(
        self,
        data: JSONBody[schemas.TitleCheckIn],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
    ) -> schemas.TitleAnswer:
        return await resale.title_check(db, keys, principal, data, now=clock.now())

    @post("/orders", summary="填写存量房买卖合同 (the seller, for a checked title)")
    async def create(
        self,
        data: JSONBody[schemas.NewResaleOrder],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
    ) -> schemas.OrderAnswer:
        return await resale.create_resale_order(db, keys, principal, data, now=clock.now())


@post(
    "/api/v1/contracts/{order_id:str}/submit",
    status_code=200,
    guards=[citizens_only],
    tags=["resale"],
    summary="提交 (the resale seller, once every party signed): 已签约",
)
async def submit(
    order_id: FromPath[str],
    db: NamedDependency[AsyncSession],
    database: NamedDependency[Database],
    clock: NamedDependency[Clock],
    keys: NamedDependency[ServiceKeys],
    pdfs: NamedDependency[ContractPdfs],
    principal: NamedDependency[Principal],
) -> Response[schemas.Submitted]:
    submitted = await resale.submit(
        db, database, keys, pdfs, principal, parse_id(order_id, what=ORDER), now=clock.now()
    )
    # It carries the contract password: never stored for an idempotent replay, never cached.
    return Response(submitted, headers={"Cache-Control": "no-store"})


@post(
    "/api/v1/contracts/{order_id:str}/transfer-registered",
    status_code=200,
    guards=[regulators_only],
    tags=["resale"],
    summary="转移登记完成 (a regulator): supervised money released to the sellers",
)
async def transfer_registered(
    order_id: FromPath[str],
    db: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    keys: NamedDependency[ServiceKeys],
    principal: NamedDependency[Principal],
) -> schemas.OrderAnswer:
    return await resale.record_transfer(
        db, keys, principal, parse_id(order_id, what=ORDER), now=clock.now()
    )


@get(
    "/api/v1/me/signatures",
    guards=[citizens_only],
    tags=["contracts"],
    summary="我的签署 (orders and cancellations waiting for my signature)",
)
async def my_signatures(
    db: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    principal: NamedDependency[Principal],
) -> schemas.SignatureTasks:
    return await reads.signature_tasks(db, principal, now=clock.now())


ROUTES = [ResaleController, submit, transfer_registered, my_signatures]
