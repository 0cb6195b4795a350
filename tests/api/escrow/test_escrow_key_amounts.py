"""Key supervised amounts computed from the units (seed 001 5.3): the company gives each
milestone's share, a regulator sets the amount per m², the amount is rate × the project's
building area × share, rounded up to the fen; releases are limited by it. Accounts
registered with fixed key amounts keep them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import load_demo_world
from api.escrow.accounts import key_amount_fen
from api.register import service as register
from api.settings import Settings
from api.tables import metadata
from tests.api.escrow.helpers import (
    ACCOUNT_NUMBER,
    ADMIN,
    FOUNDATION_KEY,
    KEY_RATE,
    MILESTONES,
    REGULATOR,
    TOPPED_OUT_KEY,
    demo_world,
    pay,
    setup,
)
from tests.api.identity.helpers import bearer, login_phone
from tests.api.identity.test_identity_migration import _tables

MISSING = "00000000-0000-4000-8000-000000000000"
DEMO_AREA = 24_897_600  # 2489.76 m² in 0.0001 m²


def _account(project_id: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "project_id": project_id,
        "bank_name": "示范银行明湖支行",
        "account_name": "示范市明湖置业有限公司预售资金监管专户",
        "account_number": ACCOUNT_NUMBER,
        "milestones": MILESTONES,
    }
    body.update(overrides)
    return body


async def test_the_account_table_matches_the_model(database: Database) -> None:
    async with database.engine.connect() as connection:
        diffs = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    assert [d for d in diffs if _tables(d) & {"escrow_supervised_accounts"}] == []


def test_the_amount_is_rate_times_area_times_share_rounded_up() -> None:
    assert key_amount_fen(KEY_RATE, DEMO_AREA, 100) == FOUNDATION_KEY  # 200 × 2489.76, exact
    assert key_amount_fen(KEY_RATE, DEMO_AREA, 40) == TOPPED_OUT_KEY  # 199 180.8 up
    assert key_amount_fen(KEY_RATE, DEMO_AREA, 0) == 0
    assert key_amount_fen(1, 1, 1) == 1  # a millionth of a fen still keeps one fen
    # A realistic rate (2 000 yuan/m²) over 100 000 m²: exact in integers.
    assert key_amount_fen(200_000, 100_000 * 10_000, 35) == 7_000_000_000


async def test_a_regulator_sets_the_rate_and_releases_follow_the_computed_amounts(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    world = await demo_world(session, keys, clock)
    admin = bearer(await login_phone(client, ADMIN))
    regulator = bearer(await login_phone(client, REGULATOR))
    created = await client.post(
        "/api/v1/escrow/accounts", headers=admin, json=_account(world["project"]["id"])
    )
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["key_basis"] == "computed" and account["key_rate_fen_per_m2"] is None
    assert [(m["key_percent"], m["key_amount_fen"]) for m in account["milestones"]] == [
        (100, None),
        (40, None),
        (0, None),
    ]
    url = f"/api/v1/escrow/accounts/{account['id']}"
    # Approved without a rate: nothing can be released until it is set.
    approved = await client.post(f"{url}/approve", headers=regulator, json={})
    assert approved.status_code == 200, approved.text
    release = {"amount_fen": 1, "milestone": "completed"}
    early = await client.post(f"{url}/releases", headers=admin, json=release)
    assert early.status_code == 409 and early.json()["code"] == "key_rate_not_set"

    for headers, body, expected in (
        (admin, {"key_rate_fen_per_m2": KEY_RATE}, (403, "role_forbidden")),
        (regulator, {"key_rate_fen_per_m2": 0}, (422, "invalid_body")),
        (regulator, {}, (422, "invalid_body")),
    ):
        answer = await client.post(f"{url}/key-rate", headers=headers, json=body)
        assert (answer.status_code, answer.json()["code"]) == expected, body
    missing = await client.post(
        f"/api/v1/escrow/accounts/{MISSING}/key-rate",
        headers=regulator,
        json={"key_rate_fen_per_m2": KEY_RATE},
    )
    assert missing.status_code == 404

    rated = await client.post(
        f"{url}/key-rate", headers=regulator, json={"key_rate_fen_per_m2": KEY_RATE}
    )
    assert rated.status_code == 200, rated.text
    assert rated.json()["key_rate_fen_per_m2"] == KEY_RATE
    assert rated.json()["key_area"] == "2489.76"
    assert [m["key_amount_fen"] for m in rated.json()["milestones"]] == [
        FOUNDATION_KEY,
        TOPPED_OUT_KEY,
        0,
    ]


async def test_a_release_above_the_computed_key_amount_is_refused_below_it_allowed(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    client = mock_client
    escrow = await setup(client, session, keys, clock, mock_settings)
    assert (await pay(client, escrow, clock, "deposit", 2_000_000)).status_code == 200
    url = f"/api/v1/escrow/accounts/{escrow.account_id}/releases"
    topped_out = 2_000_000 - TOPPED_OUT_KEY
    above = await client.post(
        url, headers=escrow.admin, json={"amount_fen": topped_out + 1, "milestone": "topped_out"}
    )
    assert above.status_code == 409 and above.json()["code"] == "release_exceeds_limit"
    assert above.json()["key_amount_fen"] == TOPPED_OUT_KEY
    assert above.json()["releasable_fen"] == topped_out
    at_limit = await client.post(
        url, headers=escrow.admin, json={"amount_fen": topped_out, "milestone": "topped_out"}
    )
    assert at_limit.status_code == 201, at_limit.text

    # A higher rate set again later raises the amounts: the pending release is re-checked
    # when the regulator decides, and now refused.
    rated = await client.post(
        f"/api/v1/escrow/accounts/{escrow.account_id}/key-rate",
        headers=escrow.regulator,
        json={"key_rate_fen_per_m2": 400},
    )
    assert [m["key_amount_fen"] for m in rated.json()["milestones"]] == [995_904, 398_362, 0]
    decided = await client.post(
        f"/api/v1/escrow/releases/{at_limit.json()['id']}/approve",
        headers=escrow.regulator,
        json={},
    )
    assert decided.status_code == 409 and decided.json()["key_amount_fen"] == 398_362


async def test_the_company_gives_shares_not_amounts(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    world = await demo_world(session, keys, clock)
    admin = bearer(await login_phone(client, ADMIN))
    regulator = bearer(await login_phone(client, REGULATOR))
    project = world["project"]["id"]
    rising = [
        {"code": "foundation", "name": "基础完成", "key_percent": 50},
        {"code": "topped_out", "name": "主体封顶", "key_percent": 80},
    ]
    cases = [
        (_account(project, milestones=rising), (422, "milestone_percents_rising")),
        (
            _account(project, milestones=[{"code": "a", "name": "基础", "key_percent": 101}]),
            (422, "invalid_body"),
        ),
        (
            _account(project, milestones=[{"code": "a", "name": "基础", "key_amount_fen": 5}]),
            (422, "unknown_field"),
        ),
    ]
    for body, expected in cases:
        answer = await client.post("/api/v1/escrow/accounts", headers=admin, json=body)
        assert (answer.status_code, answer.json()["code"]) == expected, body

    # A project with no surveyed units has no area to compute from.
    empty = await register.create_project(
        session, company_id=uuid.UUID(world["company"]["id"]), name="空地", now=clock.now()
    )
    await session.commit()
    created = await client.post(
        "/api/v1/escrow/accounts",
        headers=admin,
        json=_account(str(empty.id), account_number="6222000099990000"),
    )
    assert created.status_code == 201, created.text
    refused = await client.post(
        f"/api/v1/escrow/accounts/{created.json()['id']}/approve",
        headers=regulator,
        json={"key_rate_fen_per_m2": KEY_RATE},
    )
    assert refused.status_code == 409 and refused.json()["code"] == "project_area_unknown"


async def test_accounts_with_fixed_key_amounts_keep_them(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    """The demo world's account was registered with typed amounts (as accounts stored
    before shares existed): its releases are limited by them, and no rate applies."""
    client = mock_client
    await load_demo_world(session, keys, now=clock.now())
    await session.commit()
    admin = bearer(await login_phone(client, ADMIN))
    regulator = bearer(await login_phone(client, REGULATOR))
    account = (await client.get("/api/v1/escrow/accounts", headers=admin)).json()["items"][0]
    assert account["key_basis"] == "fixed" and account["key_rate_fen_per_m2"] is None
    assert [(m["key_percent"], m["key_amount_fen"]) for m in account["milestones"]] == [
        (None, 50_000_000),
        (None, 20_000_000),
        (None, 0),
    ]
    url = f"/api/v1/escrow/accounts/{account['id']}"
    refused = await client.post(
        f"{url}/releases", headers=admin, json={"amount_fen": 1, "milestone": "foundation"}
    )
    assert refused.json()["code"] == "release_exceeds_limit"
    assert refused.json()["key_amount_fen"] == 50_000_000
    fixed = await client.post(
        f"{url}/key-rate", headers=regulator, json={"key_rate_fen_per_m2": KEY_RATE}
    )
    assert fixed.status_code == 409 and fixed.json()["code"] == "key_amounts_fixed"
