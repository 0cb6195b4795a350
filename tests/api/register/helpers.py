"""Steps shared by the register tests: the demo world, its regulator, sales agent and
company admin logged in, and what the public and order creation say of a unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.demo import PEOPLE, load_demo_world
from tests.api.contracts.helpers import ZHANG, create, order_body, problem
from tests.api.identity.helpers import bearer, login_phone

__all__ = ["problem"]  # re-exported for the register tests

PHONES = {p.role: p.phone for p in PEOPLE if p.role not in ("buyer", "seller")}


@dataclass
class Register:
    world: dict[str, Any]
    units: dict[str, str]  # room_no -> unit id (the demo building)
    regulator: dict[str, str]  # headers
    agent: dict[str, str]
    admin: dict[str, str]
    agent_token: str

    @property
    def permit_id(self) -> str:
        return self.world["permit"]["id"]

    @property
    def project_id(self) -> str:
        return self.world["project"]["id"]

    @property
    def building_id(self) -> str:
        return self.world["building"]["id"]


async def register_world(
    client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> Register:
    """The demo world: a presale permit over floors 2-6, 101 a 物管用房, 502 seized."""
    world = await load_demo_world(session, keys, now=clock.now())
    await session.commit()
    agent = await login_phone(client, PHONES["sales_agent"])
    return Register(
        world=world,
        units={u["room_no"]: u["id"] for u in world["units"]},
        regulator=bearer(await login_phone(client, PHONES["regulator"])),
        agent=bearer(agent),
        admin=bearer(await login_phone(client, PHONES["company_admin"])),
        agent_token=agent,
    )


async def public_statuses(client: httpx.AsyncClient, r: Register) -> dict[str, str]:
    response = await client.get(f"/api/v1/public/buildings/{r.building_id}/units")
    assert response.status_code == 200, response.text
    return {u["room_no"]: u["status"] for u in response.json()["units"]}


async def register_units(client: httpx.AsyncClient, r: Register) -> dict[str, dict[str, Any]]:
    response = await client.get(
        f"/api/v1/register/buildings/{r.building_id}/units", headers=r.regulator
    )
    assert response.status_code == 200, response.text
    return {u["room_no"]: u for u in response.json()["units"]}


async def order_on(
    client: httpx.AsyncClient, r: Register, room: str, **body: Any
) -> httpx.Response:
    """A sales agent creates a presale order for the demo buyer on ``room``."""
    return await create(client, r.agent_token, order_body(r.units[room], ZHANG, **body))
