"""Staff: login by phone, roles and guards, company admins managing members, TOTP."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.demo import PEOPLE, load_demo_world
from tests.api.identity.helpers import bearer, login_phone, me, send_code, verify

PHONES = {p.role: p.phone for p in PEOPLE if p.role != "buyer"}
CITIZEN_PHONE = next(p.phone for p in PEOPLE if p.role == "buyer")


@pytest.fixture
async def world(session: AsyncSession, keys: ServiceKeys, clock: MovableClock) -> dict[str, Any]:
    world = await load_demo_world(session, keys, now=clock.now())
    await session.commit()
    return world


async def staff_login(
    client: httpx.AsyncClient, clock: MovableClock, role: str, **extra: Any
) -> str:
    clock.advance(timedelta(seconds=61))  # each login may follow another on the same phone
    return await login_phone(client, PHONES[role], **extra)


async def test_staff_log_in_by_phone_and_see_their_company_and_projects(
    mock_client: httpx.AsyncClient, clock: MovableClock, world: dict[str, Any]
) -> None:
    admin = await me(mock_client, await staff_login(mock_client, clock, "company_admin"))
    assert admin["kind"] == "staff" and admin["roles"] == ["company_admin"]
    assert admin["company"] == {"id": world["company"]["id"], "name": world["company"]["name"]}
    assert admin["phone_masked"] == "138****0004" and admin["identity_level"] is None

    agent = await me(mock_client, await staff_login(mock_client, clock, "sales_agent"))
    assert agent["roles"] == ["sales_agent"]
    assert agent["projects"] == [world["project"]]

    regulator = await me(mock_client, await staff_login(mock_client, clock, "regulator"))
    assert regulator["roles"] == ["regulator"] and regulator["company"] is None

    # A staff member may still log in as a citizen with the same phone, on purpose.
    clock.advance(timedelta(seconds=61))
    code = await send_code(mock_client, PHONES["sales_agent"])
    as_citizen = await verify(mock_client, PHONES["sales_agent"], code, kind="citizen")
    assert as_citizen.json()["kind"] == "citizen"
    # Asking for a staff login with a citizen's phone is refused (after the code is proven).
    clock.advance(timedelta(seconds=61))
    code = await send_code(mock_client, CITIZEN_PHONE)
    not_staff = await verify(mock_client, CITIZEN_PHONE, code, kind="staff")
    assert not_staff.status_code == 403 and not_staff.json()["code"] == "not_staff"


async def test_citizens_and_staff_cannot_use_each_others_routes(
    mock_client: httpx.AsyncClient, clock: MovableClock, world: dict[str, Any]
) -> None:
    citizen = bearer(await login_phone(mock_client, CITIZEN_PHONE))
    admin = bearer(await staff_login(mock_client, clock, "company_admin"))
    agent = bearer(await staff_login(mock_client, clock, "sales_agent"))
    member = {"name": "新销售", "phone": "13800000099", "role": "sales_agent"}

    for headers, problem in ((citizen, "staff_only"), (agent, "role_forbidden")):
        listed = await mock_client.get("/api/v1/staff/members", headers=headers)
        assert listed.status_code == 403 and listed.json()["code"] == problem
        created = await mock_client.post("/api/v1/staff/members", json=member, headers=headers)
        assert created.status_code == 403 and created.json()["code"] == problem
    for headers in (admin, agent):
        for path in ("/api/v1/me/real-name", "/api/v1/me/face-sessions", "/api/v1/me/phone"):
            response = await mock_client.post(path, json={}, headers=headers)
            assert response.status_code == 403 and response.json()["code"] == "citizen_only"
    enroll = await mock_client.post("/api/v1/me/totp", headers=citizen)
    assert enroll.status_code == 403 and enroll.json()["code"] == "staff_only"
    anonymous = await mock_client.get("/api/v1/staff/members")
    assert anonymous.status_code == 401
    assert (await mock_client.get("/api/v1/staff/members", headers=admin)).status_code == 200


async def test_an_admin_creates_assigns_and_disables_agents(
    mock_client: httpx.AsyncClient, clock: MovableClock, world: dict[str, Any]
) -> None:
    admin = bearer(await staff_login(mock_client, clock, "company_admin"))
    created = await mock_client.post(
        "/api/v1/staff/members",
        json={"name": "新销售", "phone": "13800000099", "role": "sales_agent"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    member = created.json()
    assert member["phone_masked"] == "138****0099" and member["projects"] == []
    assert member["company_id"] == world["company"]["id"]

    again = await mock_client.post(
        "/api/v1/staff/members",
        json={"name": "重复", "phone": "13800000099", "role": "seal_keeper"},
        headers=admin,
    )
    assert again.status_code == 409 and again.json()["code"] == "staff_phone_taken"
    regulator = await mock_client.post(
        "/api/v1/staff/members",
        json={"name": "监管", "phone": "13800000098", "role": "regulator"},
        headers=admin,
    )
    assert regulator.status_code == 422 and regulator.json()["code"] == "role_not_allowed"
    bad_phone = await mock_client.post(
        "/api/v1/staff/members",
        json={"name": "错号", "phone": "1380000", "role": "sales_agent"},
        headers=admin,
    )
    assert bad_phone.status_code == 422 and bad_phone.json()["code"] == "phone_invalid"

    projects = f"/api/v1/staff/members/{member['id']}/projects"
    assigned = await mock_client.put(
        projects, json={"project_ids": [world["project"]["id"]]}, headers=admin
    )
    assert assigned.status_code == 200 and assigned.json()["projects"] == [world["project"]]
    # The resale estate belongs to another company.
    listed = (await mock_client.get("/api/v1/public/projects")).json()["items"]
    foreign = next(p["id"] for p in listed if p["id"] != world["project"]["id"])
    refused = await mock_client.put(projects, json={"project_ids": [foreign]}, headers=admin)
    assert refused.status_code == 422 and refused.json()["code"] == "project_not_in_company"
    seal_keeper_id = next(
        m["id"]
        for m in (await mock_client.get("/api/v1/staff/members", headers=admin)).json()["members"]
        if m["role"] == "seal_keeper"
    )
    not_agent = await mock_client.put(
        f"/api/v1/staff/members/{seal_keeper_id}/projects",
        json={"project_ids": [world["project"]["id"]]},
        headers=admin,
    )
    assert not_agent.status_code == 422 and not_agent.json()["code"] == "projects_for_agents_only"

    # Once a regulator approved it (入网审核), the new agent logs in, sees the project,
    # then is disabled: the session dies with it.
    regulator = bearer(await staff_login(mock_client, clock, "regulator"))
    approved = await mock_client.post(
        f"/api/v1/staff/members/{member['id']}/approve", json={}, headers=regulator
    )
    assert approved.status_code == 200, approved.text
    clock.advance(timedelta(seconds=61))
    # Its owner asks for the staff account (confirming the phone, review finding 10).
    agent_token = await login_phone(mock_client, "13800000099", kind="staff")
    assert (await me(mock_client, agent_token))["projects"] == [world["project"]]
    disabled = await mock_client.post(
        f"/api/v1/staff/members/{member['id']}/disable", headers=admin
    )
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    gone = await mock_client.get("/api/v1/me", headers=bearer(agent_token))
    assert gone.status_code == 401
    clock.advance(timedelta(seconds=61))
    code = await send_code(mock_client, "13800000099")
    refused_login = await verify(mock_client, "13800000099", code)
    assert refused_login.status_code == 403 and refused_login.json()["code"] == "staff_disabled"


async def test_admins_only_reach_their_own_company(
    mock_client: httpx.AsyncClient, clock: MovableClock, world: dict[str, Any]
) -> None:
    admin_token = await staff_login(mock_client, clock, "company_admin")
    admin = bearer(admin_token)
    regulator_id = (await me(mock_client, await staff_login(mock_client, clock, "regulator")))["id"]
    outside = await mock_client.post(f"/api/v1/staff/members/{regulator_id}/disable", headers=admin)
    assert outside.status_code == 404
    malformed = await mock_client.post("/api/v1/staff/members/nope/disable", headers=admin)
    assert malformed.status_code == 404
    own_id = (await me(mock_client, admin_token))["id"]
    itself = await mock_client.post(f"/api/v1/staff/members/{own_id}/disable", headers=admin)
    assert itself.status_code == 409 and itself.json()["code"] == "cannot_disable_self"


def next_step(clock: MovableClock, *, after: int = 60) -> None:
    """Move at least `after` seconds on, to one second into a TOTP time step (30 s)."""
    target = clock.now().timestamp() + after
    clock.advance(timedelta(seconds=(30 - target % 30) % 30 + 1 + after))


async def test_seal_keepers_enroll_totp_and_then_need_it_to_log_in(
    mock_client: httpx.AsyncClient, clock: MovableClock, world: dict[str, Any]
) -> None:
    phone = PHONES["seal_keeper"]
    token = await staff_login(mock_client, clock, "seal_keeper")  # not enrolled yet: SMS only
    headers = bearer(token)
    confirm_early = await mock_client.post(
        "/api/v1/me/totp/confirm", json={"code": "123456"}, headers=headers
    )
    assert confirm_early.status_code == 409 and confirm_early.json()["code"] == "totp_not_started"
    enrolled = await mock_client.post("/api/v1/me/totp", headers=headers)
    assert enrolled.status_code == 200
    body = enrolled.json()
    assert body["uri"].startswith("otpauth://totp/") and body["secret"] in body["uri"]
    assert base64.b64decode(body["qr_png_base64"]).startswith(b"\x89PNG")
    totp = pyotp.TOTP(body["secret"])

    def at(seconds: int = 0) -> str:
        return totp.at(clock.now() + timedelta(seconds=seconds))

    def not_(code: str) -> str:
        return "000000" if code != "000000" else "111111"

    # An SMS code asked for now, used after enrollment.
    next_step(clock)
    sms_code = await send_code(mock_client, phone)
    bad = await mock_client.post(
        "/api/v1/me/totp/confirm", json={"code": not_(at())}, headers=headers
    )
    assert bad.status_code == 400 and bad.json()["code"] == "totp_confirm_invalid"
    confirmed = await mock_client.post(
        "/api/v1/me/totp/confirm", json={"code": at()}, headers=headers
    )
    assert confirmed.status_code == 200 and confirmed.json()["totp_enabled"] is True
    assert (await me(mock_client, token))["totp_enabled"] is True
    twice = await mock_client.post("/api/v1/me/totp", headers=headers)
    assert twice.status_code == 409 and twice.json()["code"] == "totp_already_enabled"

    # The step used to confirm cannot log in.
    replay = await verify(mock_client, phone, sms_code, totp_code=at())
    assert replay.status_code == 401 and replay.json()["code"] == "totp_replayed"

    next_step(clock)
    missing = await verify(mock_client, phone, await send_code(mock_client, phone))
    assert missing.status_code == 401 and missing.json()["code"] == "totp_required"

    next_step(clock)
    wrong_totp = await verify(
        mock_client, phone, await send_code(mock_client, phone), totp_code=not_(at())
    )
    assert wrong_totp.status_code == 401 and wrong_totp.json()["code"] == "totp_invalid"

    clock.advance(timedelta(minutes=10))  # past the 5-sends-in-10-minutes quota
    next_step(clock)
    # The next step's code (clock drift) is accepted ...
    ok = await verify(mock_client, phone, await send_code(mock_client, phone), totp_code=at(30))
    assert ok.status_code == 200 and ok.json()["kind"] == "staff"
    used = at(30)
    # ... and a minute later it is still inside the window, but used: refused.
    clock.advance(timedelta(seconds=60))
    again = await verify(mock_client, phone, await send_code(mock_client, phone), totp_code=used)
    assert again.status_code == 401 and again.json()["code"] == "totp_replayed"
    # The code of the moment works.
    next_step(clock)
    assert (
        await verify(mock_client, phone, await send_code(mock_client, phone), totp_code=at())
    ).status_code == 200
