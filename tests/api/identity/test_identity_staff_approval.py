"""入网审核: staff a company admin adds wait for a regulator; a pending or rejected member
cannot log in at all (no session exists to forget a check on), an approved one can."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.db.migrate import upgrade
from api.demo import load_demo_world
from api.identity.models import StaffRole
from api.identity.staff import create_staff_member
from api.register import service as register
from api.settings import Settings
from api.tables import metadata
from tests.api.identity.helpers import bearer, login_phone, me, send_code, verify
from tests.api.identity.test_identity_migration import _tables
from tests.api.identity.test_identity_staff import staff_login
from tests.api.world import USCC

NEW_AGENT = "13800000077"
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def world(session: AsyncSession, keys: ServiceKeys, clock: MovableClock) -> dict[str, Any]:
    world = await load_demo_world(session, keys, now=clock.now())
    await session.commit()
    return world


async def _try_login(client: httpx.AsyncClient, clock: MovableClock, phone: str) -> httpx.Response:
    """A staff login the phone's owner asks for (which also confirms the phone, finding 10)."""
    clock.advance(timedelta(seconds=61))
    return await verify(client, phone, await send_code(client, phone), kind="staff")


async def test_staff_table_matches_the_model(database: Database) -> None:
    async with database.engine.connect() as connection:
        diffs = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    assert [d for d in diffs if _tables(d) & {"staff_members"}] == []


async def test_a_new_member_waits_for_a_regulator_before_logging_in(
    mock_client: httpx.AsyncClient, clock: MovableClock, world: dict[str, Any]
) -> None:
    client = mock_client
    admin = bearer(await staff_login(client, clock, "company_admin"))
    regulator = bearer(await staff_login(client, clock, "regulator"))
    # The demo world's staff were created approved.
    members = (await client.get("/api/v1/staff/members", headers=admin)).json()["members"]
    assert {m["approval"] for m in members} == {"approved"}
    assert (await client.get("/api/v1/staff/pending", headers=regulator)).json()["members"] == []

    added = await client.post(
        "/api/v1/staff/members",
        json={"name": "钱新人", "phone": NEW_AGENT, "role": "sales_agent"},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    member = added.json()
    assert member["approval"] == "pending"

    refused = await _try_login(client, clock, NEW_AGENT)
    assert refused.status_code == 403 and refused.json()["code"] == "staff_pending"
    assert "审核" in refused.json()["detail"]
    # The phone's owner may still use the app as a citizen, on purpose.
    clock.advance(timedelta(seconds=61))
    as_citizen = await verify(client, NEW_AGENT, await send_code(client, NEW_AGENT), kind="citizen")
    assert as_citizen.status_code == 200 and as_citizen.json()["kind"] == "citizen"

    pending = (await client.get("/api/v1/staff/pending", headers=regulator)).json()["members"]
    assert [(m["id"], m["company_name"]) for m in pending] == [
        (member["id"], world["company"]["name"])
    ]
    approved = await client.post(
        f"/api/v1/staff/members/{member['id']}/approve", json={}, headers=regulator
    )
    assert approved.status_code == 200 and approved.json()["approval"] == "approved"
    again = await client.post(
        f"/api/v1/staff/members/{member['id']}/approve", json={}, headers=regulator
    )
    assert again.status_code == 409 and again.json()["code"] == "staff_already_reviewed"

    clock.advance(timedelta(seconds=61))
    token = await login_phone(client, NEW_AGENT)
    assert (await me(client, token))["roles"] == ["sales_agent"]
    assert (await client.get("/api/v1/staff/pending", headers=regulator)).json()["members"] == []


async def test_a_rejected_member_stays_out_until_submitted_again(
    mock_client: httpx.AsyncClient, clock: MovableClock, world: dict[str, Any]
) -> None:
    client = mock_client
    admin = bearer(await staff_login(client, clock, "company_admin"))
    regulator = bearer(await staff_login(client, clock, "regulator"))
    body = {"name": "孙印章", "phone": NEW_AGENT, "role": "seal_keeper"}
    member = (await client.post("/api/v1/staff/members", json=body, headers=admin)).json()
    reject = f"/api/v1/staff/members/{member['id']}/reject"

    no_reason = await client.post(reject, json={}, headers=regulator)
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "reason_required"
    rejected = await client.post(reject, json={"reason": "授权委托书缺失"}, headers=regulator)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["approval"] == "rejected"
    assert rejected.json()["review_reason"] == "授权委托书缺失"
    late = await client.post(
        f"/api/v1/staff/members/{member['id']}/approve", json={}, headers=regulator
    )
    assert late.status_code == 409 and late.json()["code"] == "staff_already_reviewed"

    refused = await _try_login(client, clock, NEW_AGENT)
    assert refused.status_code == 403 and refused.json()["code"] == "staff_rejected"
    assert refused.json()["reason"] == "授权委托书缺失"

    # The admin corrects and submits the same phone again: pending, still no login.
    again = await client.post("/api/v1/staff/members", json=body, headers=admin)
    assert again.status_code == 201 and again.json()["id"] == member["id"]
    assert again.json()["approval"] == "pending" and again.json()["review_reason"] == ""
    assert (await _try_login(client, clock, NEW_AGENT)).json()["code"] == "staff_pending"


async def test_only_regulators_review_and_only_company_staff(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    world: dict[str, Any],
) -> None:
    client = mock_client
    admin = bearer(await staff_login(client, clock, "company_admin"))
    agent = bearer(await staff_login(client, clock, "sales_agent"))
    regulator_token = await staff_login(client, clock, "regulator")
    regulator = bearer(regulator_token)
    member = (
        await client.post(
            "/api/v1/staff/members",
            json={"name": "钱新人", "phone": NEW_AGENT, "role": "sales_agent"},
            headers=admin,
        )
    ).json()
    approve = f"/api/v1/staff/members/{member['id']}/approve"
    for headers in (admin, agent):
        answer = await client.post(approve, json={}, headers=headers)
        assert answer.status_code == 403 and answer.json()["code"] == "role_forbidden"
        listed = await client.get("/api/v1/staff/pending", headers=headers)
        assert listed.status_code == 403
    citizen = bearer(await login_phone(client, "13900000001"))
    assert (await client.get("/api/v1/staff/pending", headers=citizen)).json()[
        "code"
    ] == "staff_only"
    for path in (
        f"/api/v1/staff/members/{MISSING}/approve",
        "/api/v1/staff/members/nope/approve",
        # A regulator is not a company's member to review.
        f"/api/v1/staff/members/{(await me(client, regulator_token))['id']}/approve",
    ):
        answer = await client.post(path, json={}, headers=regulator)
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", path

    # Another company's admin cannot touch this member, pending or not.
    other = await register.create_company(
        session, name="他方置业有限公司", uscc=USCC, now=clock.now()
    )
    await create_staff_member(
        session,
        keys,
        name="他方管理",
        phone="13800000066",
        role=StaffRole.company_admin,
        company_id=other.id,
        now=clock.now(),
    )
    await session.commit()
    other_admin = bearer(await login_phone(client, "13800000066"))
    foreign = await client.post(
        f"/api/v1/staff/members/{member['id']}/disable", headers=other_admin
    )
    assert foreign.status_code == 404
    listed = (await client.get("/api/v1/staff/members", headers=other_admin)).json()["members"]
    assert [m["name"] for m in listed] == ["他方管理"]


def test_the_migration_approves_staff_who_were_already_there(tmp_path: Path) -> None:
    """Staff working before review existed stay able to log in. Always on a SQLite file of
    its own: the run's PostgreSQL database is already at the head, and the upgrade's DDL
    (a column with a server default) is the same on both."""
    settings = Settings(data_dir=tmp_path)
    upgrade(settings, "0009")  # the revision before staff approval
    database = tmp_path / "wangqian.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO staff_members (id, phone, name, role, created_at) "
            "VALUES ('00000000000040008000000000000001', '13800000055', '老员工', "
            "'sales_agent', '2026-01-01 00:00:00')"
        )
    upgrade(settings)
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT approval, review_reason FROM staff_members").fetchone()
    assert row == ("approved", "")
