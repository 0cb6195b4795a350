"""Finding 11 of the outside review (part): seal keepers and regulators could work
without TOTP. With WANGQIAN_STAFF_TOTP_REQUIRED (on outside the demo) they may log in and
enroll an authenticator, but act only once one is enrolled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import msgspec
import pyotp
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import PEOPLE, load_demo_world
from api.settings import Settings
from tests.api.contracts.helpers import problem
from tests.api.identity.helpers import bearer, login_phone

SEAL_KEEPER = next(p for p in PEOPLE if p.role == "seal_keeper")
REGULATOR = next(p for p in PEOPLE if p.role == "regulator")
AGENT = next(p for p in PEOPLE if p.role == "sales_agent")


@pytest.fixture
async def strict_client(
    mock_settings: Settings, clock: MovableClock, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    settings = msgspec.structs.replace(mock_settings, staff_totp_required=True)
    loopback = httpx.ASGITransport(app=None)  # type: ignore[arg-type]
    app: Litestar = create_app(settings, clock=clock, database=database, http_transport=loopback)
    loopback.app = app
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


def test_the_default_requires_it_outside_the_demo() -> None:
    assert Settings().totp_required_for_staff is True
    assert Settings(mocks_enabled=True).totp_required_for_staff is False
    assert (
        Settings.from_env({"WANGQIAN_STAFF_TOTP_REQUIRED": "false"}).totp_required_for_staff
        is False
    )
    assert (
        Settings.from_env(
            {"WANGQIAN_MOCKS_ENABLED": "true", "WANGQIAN_STAFF_TOTP_REQUIRED": "true"}
        ).totp_required_for_staff
        is True
    )


async def test_seal_keepers_and_regulators_act_only_with_totp(
    strict_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    client = strict_client
    await load_demo_world(session, keys, now=clock.now())
    await session.commit()
    keeper = await login_phone(client, SEAL_KEEPER.phone)
    regulator = await login_phone(client, REGULATOR.phone)
    agent = await login_phone(client, AGENT.phone)

    pending = await client.get("/api/v1/staff/pending", headers=bearer(regulator))
    assert problem(pending) == (403, "totp_enrollment_required")
    sealing = await client.post(
        "/api/v1/contracts/00000000-0000-4000-8000-000000000000/seal/challenge",
        headers=bearer(keeper),
    )
    assert problem(sealing) == (403, "totp_enrollment_required")
    # Sales agents are not concerned.
    listed = await client.get("/api/v1/contracts", headers=bearer(agent))
    assert listed.status_code == 200, listed.text

    # They may enroll; then they act (and log in with TOTP from then on).
    for token in (keeper, regulator):
        enrolled = await client.post("/api/v1/me/totp", headers=bearer(token))
        assert enrolled.status_code == 200, enrolled.text
        totp = pyotp.TOTP(enrolled.json()["secret"])
        confirmed = await client.post(
            "/api/v1/me/totp/confirm", json={"code": totp.at(clock.now())}, headers=bearer(token)
        )
        assert confirmed.status_code == 200, confirmed.text
    clock.advance(timedelta(seconds=31))
    assert (await client.get("/api/v1/staff/pending", headers=bearer(regulator))).status_code == 200
    sealing = await client.post(
        "/api/v1/contracts/00000000-0000-4000-8000-000000000000/seal/challenge",
        headers=bearer(keeper),
    )
    assert problem(sealing) == (404, "not_found")  # past the guard: there is no such order
