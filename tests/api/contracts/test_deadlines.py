"""Deadlines and the seed's order of money, with the clock moved: a draft lives 30 minutes
after its last change; an issued order until the end of the next natural day (a deposit
it took goes back); an order every buyer signed waits for the seal without expiring while
the company is reminded each day; with deposits after signing, notices open at completion."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from api.contracts.models import ContractOrder, OrderStatus
from api.contracts.orders import expire_due_orders
from api.contracts.sealing import remind_to_seal
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.outbox.models import OutboxMessage
from api.settings import Settings
from tests.api.contracts.helpers import (
    LI,
    SEAL_KEEPER,
    ZHANG,
    create,
    create_issued,
    demo,
    face_verified,
    order_body,
    problem,
    relogin,
    scan,
    seal,
    sign,
)
from tests.api.identity.helpers import bearer
from tests.api.outbox.helpers import recipient


async def _unit_status(client: httpx.AsyncClient, building_id: str, room: str) -> str:
    table = (await client.get(f"/api/v1/public/buildings/{building_id}/units")).json()
    return next(u["status"] for u in table["units"] if u["room_no"] == room)


async def _order(database: Database, order_id: str) -> ContractOrder:
    async with database.reader() as reader:
        order = await reader.get(ContractOrder, uuid.UUID(order_id))
        assert order is not None
        return order


async def test_a_draft_not_issued_in_30_minutes_is_discarded(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    building = d.world["building"]["id"]
    draft = (await create(mock_client, d.agent, order_body(d.units["301"], ZHANG))).json()
    assert draft["expires_at"] is not None
    clock.advance(timedelta(minutes=29))
    assert await _unit_status(mock_client, building, "301") == "signing"
    clock.advance(timedelta(minutes=2))
    # Reads see it gone before any sweep: the unit is for sale again.
    assert await _unit_status(mock_client, building, "301") == "available"
    await relogin(mock_client, d)
    issued = await mock_client.post(
        f"/api/v1/contracts/{draft['id']}/issue", headers=bearer(d.agent)
    )
    assert problem(issued) == (410, "draft_expired")
    order = await _order(database, draft["id"])
    assert (order.status, order.end_reason) == (OrderStatus.expired, "draft_discarded")
    events = (
        await mock_client.get(f"/api/v1/contracts/{draft['id']}/events", headers=bearer(d.agent))
    ).json()["events"]
    assert events[-1]["type"] == "draft_discarded"

    # The sweep discards the ones nobody touches.
    other = (await create(mock_client, d.agent, order_body(d.units["301"], LI))).json()
    clock.advance(timedelta(minutes=31))
    async with database.writer() as writer, writer.begin():
        assert await expire_due_orders(writer, clock.now()) == 1
    await relogin(mock_client, d)
    assert (await _order(database, other["id"])).end_reason == "draft_discarded"
    again = await create(mock_client, d.agent, order_body(d.units["301"], LI))
    assert again.status_code == 201, again.text


async def test_an_order_that_expires_gives_its_deposit_back(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    issued = await create_issued(mock_client, d, "302", ZHANG)
    order_id = issued["order"]["id"]
    clock.set(datetime.fromisoformat(issued["expires_at"].replace("Z", "+00:00")))
    async with database.writer() as writer, writer.begin():
        assert await expire_due_orders(writer, clock.now()) == 1
    await relogin(mock_client, d)
    notices = (
        await mock_client.get(
            f"/api/v1/contracts/{order_id}/payment-notices", headers=bearer(d.agent)
        )
    ).json()["items"]
    assert [(n["kind"], n["paid_fen"], n["status"]) for n in notices] == [
        ("deposit", 50_000_00, "cancelled")
    ]
    accounts = (await mock_client.get("/api/v1/escrow/accounts", headers=bearer(d.agent))).json()
    statement = (
        await mock_client.get(
            f"/api/v1/escrow/accounts/{accounts['items'][0]['id']}/statement",
            headers=bearer(d.agent),
        )
    ).json()
    assert [(i["kind"], i["amount_fen"]) for i in statement["instructions"]] == [
        ("refund", 50_000_00)
    ]


async def test_a_signed_order_waits_for_the_seal_and_the_company_is_reminded_daily(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    issued = await create_issued(mock_client, d, "303", ZHANG)
    order_id = issued["order"]["id"]
    zhang = await face_verified(mock_client, ZHANG)
    assert (await scan(mock_client, zhang, issued["scene"])).status_code == 200
    signed, _ = await sign(mock_client, zhang, order_id, ZHANG.phone)
    assert signed.json()["order"]["status"] == "awaiting_seal"
    assert signed.json()["order"]["expires_at"] is None

    async def remind() -> int:
        async with database.writer() as writer, writer.begin():
            return await remind_to_seal(writer, keys, now=clock.now())

    async def reminders() -> list[tuple[str | None, str]]:
        async with database.reader() as reader:
            rows = await reader.scalars(
                select(OutboxMessage).where(OutboxMessage.template == "seal_reminder")
            )
            return [(recipient(keys, m), m.dedupe_key) for m in rows]

    # Signed on Monday 10:00: nothing the same day, one on Tuesday from 09:00, once.
    assert await remind() == 0
    clock.set(datetime(2026, 11, 24, 0, 30, tzinfo=UTC))  # Tuesday 08:30 in Shanghai
    assert await remind() == 0
    clock.set(datetime(2026, 11, 24, 1, 30, tzinfo=UTC))  # 09:30
    assert await remind() == 1
    assert await remind() == 0
    assert [phone for phone, _ in await reminders()] == [SEAL_KEEPER.phone]
    clock.set(datetime(2026, 11, 27, 2, 0, tzinfo=UTC))  # Friday: still waiting, not expired
    async with database.writer() as writer, writer.begin():
        assert await expire_due_orders(writer, clock.now()) == 0
    assert await remind() == 1
    assert len(await reminders()) == 2
    await relogin(mock_client, d)
    sealed = await seal(mock_client, d, order_id)
    assert sealed.status_code == 200, sealed.text
    clock.advance(timedelta(days=1))
    assert await remind() == 0


@pytest.fixture
async def later_client(
    mock_settings: Settings, clock: MovableClock, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """The app of a city that takes deposits after signing."""
    loopback = httpx.ASGITransport(app=None)  # type: ignore[arg-type]
    app = create_app(
        msgspec.structs.replace(mock_settings, deposit_before_signing=False),
        clock=clock,
        database=database,
        http_transport=loopback,
    )
    loopback.app = app
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


async def test_with_deposits_after_signing_the_notices_open_at_completion(
    later_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    client = later_client
    d = await demo(client, session, keys, clock)
    issued = await create_issued(client, d, "304", ZHANG, pay=False)
    order_id = issued["order"]["id"]
    listed = await client.get(
        f"/api/v1/contracts/{order_id}/payment-notices", headers=bearer(d.agent)
    )
    assert problem(listed) == (404, "not_found")
    zhang = await face_verified(client, ZHANG)
    assert (await scan(client, zhang, issued["scene"])).status_code == 200
    signed, _ = await sign(client, zhang, order_id, ZHANG.phone)
    assert signed.status_code == 200, signed.text
    sealed = await seal(client, d, order_id)
    assert sealed.status_code == 200, sealed.text
    notices = (
        await client.get(f"/api/v1/contracts/{order_id}/payment-notices", headers=bearer(zhang))
    ).json()["items"]
    assert sorted((n["kind"], n["status"]) for n in notices) == [
        ("deposit", "unpaid"),
        ("down_payment", "unpaid"),
    ]
