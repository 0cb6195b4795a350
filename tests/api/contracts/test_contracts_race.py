"""Many agents' create requests at once on few units: every unit ends with exactly one live
order, the rest are refused with 409 ``unit_unavailable``, and nothing answers 5xx. The
requests run concurrently through the ASGI app (each on its own database connection), on
SQLite and on PostgreSQL; the database's partial unique index is what holds."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.models import LIVE_STATUSES, ContractOrder
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from tests.api.contracts.helpers import LI, ZHANG, create, demo, order_body

ROOMS = ["201", "202", "203", "204"]
PER_UNIT = 8


async def test_concurrent_creates_leave_exactly_one_live_order_per_unit(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    bodies = [
        order_body(d.units[room], ZHANG if n % 2 else LI) for room in ROOMS for n in range(PER_UNIT)
    ]
    responses = await asyncio.gather(*(create(mock_client, d.agent, b) for b in bodies))
    outcomes = Counter(
        (r.status_code, r.json().get("code", "")) for r in responses if r.status_code != 201
    )
    created = [r.json() for r in responses if r.status_code == 201]
    assert all(r.status_code < 500 for r in responses), outcomes
    assert sorted(o["unit"]["room_no"] for o in created) == sorted(ROOMS)
    assert outcomes == {(409, "unit_unavailable"): len(bodies) - len(ROOMS)}
    async with database.reader() as reader:
        live = dict(
            (
                await reader.execute(
                    select(ContractOrder.unit_id, func.count())
                    .where(ContractOrder.status.in_(LIVE_STATUSES))
                    .group_by(ContractOrder.unit_id)
                )
            ).all()
        )
    assert sorted(str(u) for u in live) == sorted(d.units[r] for r in ROOMS)
    assert set(live.values()) == {1}
