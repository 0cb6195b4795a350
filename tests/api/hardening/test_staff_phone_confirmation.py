"""Finding 10 of the outside review: company B's admin registered citizen 张三's phone as
B's seal keeper, and 张三 then logged in as B's staff. A phone becomes a staff login only
once its owner confirms with a code (a login asking for the staff account), and after a
regulator approved the member."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.demo import PEOPLE
from tests.api.contracts.helpers import ZHANG, demo, face_verified, problem
from tests.api.identity.helpers import bearer, login_phone, me, send_code, verify

ADMIN = next(p for p in PEOPLE if p.role == "company_admin")
REGULATOR = next(p for p in PEOPLE if p.role == "regulator")


async def test_an_admin_cannot_turn_a_citizens_phone_into_a_staff_login(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    before = await me(client, zhang)
    admin = bearer(await login_phone(client, ADMIN.phone))
    regulator = bearer(await login_phone(client, REGULATOR.phone))
    added = await client.post(
        "/api/v1/staff/members",
        json={"name": "张三", "phone": ZHANG.phone, "role": "seal_keeper"},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    approved = await client.post(
        f"/api/v1/staff/members/{added.json()['id']}/approve", json={}, headers=regulator
    )
    assert approved.status_code == 200, approved.text

    # 张三 logs in as always: still the citizen, with his identity, not B's seal keeper.
    clock.advance(timedelta(seconds=61))
    again = await login_phone(client, ZHANG.phone)
    mine = await me(client, again)
    assert mine["kind"] == "citizen" and mine["id"] == before["id"]
    assert mine["identity_level"] == "face_verified"

    # Only when the phone's owner asks for the staff account (a code to that phone) does
    # the phone become B's staff login.
    clock.advance(timedelta(seconds=61))
    staff = await verify(client, ZHANG.phone, await send_code(client, ZHANG.phone), kind="staff")
    assert staff.status_code == 200, staff.text
    assert (await me(client, staff.json()["token"]))["roles"] == ["seal_keeper"]


async def test_confirming_does_not_skip_the_regulator(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    await demo(client, session, keys, clock)
    admin = bearer(await login_phone(client, ADMIN.phone))
    added = await client.post(
        "/api/v1/staff/members",
        json={"name": "新印章", "phone": "13700000555", "role": "seal_keeper"},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    clock.advance(timedelta(seconds=61))
    code = await send_code(client, "13700000555")
    refused = await verify(client, "13700000555", code, kind="staff")
    assert problem(refused) == (403, "staff_pending")
