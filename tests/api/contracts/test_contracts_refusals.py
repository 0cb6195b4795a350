"""Every refusal of the contract flow, each with its own problem code."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.orders import expire_due_orders
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.identity.models import StaffRole
from api.identity.staff import create_staff_member
from api.register import service as register
from tests.api.contracts.helpers import (
    AGENT,
    LI,
    WANG,
    ZHANG,
    create,
    create_issued,
    demo,
    face_verified,
    latest_code,
    order_body,
    problem,
    scan,
    sign,
)
from tests.api.identity.helpers import bearer, login_phone
from tests.api.world import USCC


async def test_creating_an_order_checks_the_unit_the_agent_and_the_terms(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    resale_unit = d.world["resale_title"]["unit_id"]
    cases = [
        (order_body(d.units["102"], ZHANG), (409, "permit_not_found")),  # no permit on floor 1
        (order_body(d.units["101"], ZHANG), (409, "unit_not_for_sale")),  # 物管用房
        (order_body(d.units["502"], ZHANG), (409, "unit_restricted")),  # 司法查封
        (order_body(d.units["201"], ZHANG, kind="spot"), (409, "permit_not_found")),
        (order_body(resale_unit, ZHANG), (403, "project_not_assigned")),
        (order_body("00000000-0000-4000-8000-000000000000", ZHANG), (404, "unit_not_found")),
        (order_body(d.units["201"], ZHANG, template="nope"), (422, "template_unknown")),
        (
            order_body(d.units["201"], ZHANG, deposit_fen=2_000_000_00, down_payment_fen=1),
            (422, "amounts_invalid"),
        ),
        (
            order_body(d.units["201"], ZHANG, delivery_date="2020-01-01"),
            (422, "delivery_date_invalid"),
        ),
        (order_body(d.units["201"], ZHANG, ZHANG), (422, "buyers_duplicate")),
        (order_body(d.units["201"], ZHANG, payment_method="cash"), (422, "invalid_body")),
        (order_body(d.units["201"], ZHANG, price_fen=0), (422, "invalid_body")),
    ]
    for body, expected in cases:
        assert problem(await create(client, d.agent, body)) == expected, body
    bad_id = order_body(d.units["201"], ZHANG)
    bad_id["buyers"][0]["id_number"] = ZHANG.id_number[:-1] + (
        "0" if ZHANG.id_number[-1] != "0" else "1"
    )
    assert problem(await create(client, d.agent, bad_id)) == (422, "id_number_check_char")
    no_share = order_body(d.units["201"], ZHANG, LI)
    no_share["buyers"][1]["share"] = ""
    assert problem(await create(client, d.agent, no_share)) == (422, "share_required")
    bad_sum = order_body(d.units["201"], ZHANG, LI)
    bad_sum["buyers"][1]["share"] = "1/3"
    assert problem(await create(client, d.agent, bad_sum)) == (422, "shares_invalid")
    percent = order_body(d.units["201"], ZHANG, LI)
    percent["buyers"][0]["share"], percent["buyers"][1]["share"] = "60%", "40%"
    key = {**bearer(d.agent), "Idempotency-Key": "create-201"}
    first = await client.post("/api/v1/contracts", json=percent, headers=key)
    assert first.status_code == 201, first.text
    replayed = await client.post("/api/v1/contracts", json=percent, headers=key)
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json()["id"] == first.json()["id"]
    # One live order per unit.
    assert problem(await create(client, d.agent, order_body(d.units["201"], LI))) == (
        409,
        "unit_unavailable",
    )
    # Only sales agents create orders.
    body = order_body(d.units["202"], ZHANG)
    assert problem(await create(client, d.seal_keeper, body)) == (403, "role_forbidden")
    citizen = await login_phone(client, ZHANG.phone)
    assert problem(await create(client, citizen, body)) == (403, "staff_only")
    assert problem(await client.post("/api/v1/contracts", json=body)) == (401, "not_authenticated")


async def test_strangers_other_companies_and_wrong_states_are_refused(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    # Another developer's agent.
    other = await register.create_company(
        session, name="别家置业有限公司", uscc=USCC, now=clock.now()
    )
    await create_staff_member(
        session,
        keys,
        name="别家销售",
        phone="13700000009",
        role=StaffRole.sales_agent,
        company_id=other.id,
        now=clock.now(),
    )
    await session.commit()
    outsider_agent = await login_phone(client, "13700000009")

    created = await create(client, d.agent, order_body(d.units["202"], ZHANG))
    order_id = created.json()["id"]
    base = f"/api/v1/contracts/{order_id}"
    # Not issued yet: no QR, no document, nothing to sign.
    assert problem(await client.get(f"{base}/qr.png", headers=bearer(d.agent))) == (
        409,
        "order_not_issued",
    )
    assert problem(await client.get(f"{base}/document", headers=bearer(d.agent))) == (
        409,
        "document_not_issued",
    )
    for path in ("", "/events", "/qr.svg"):
        assert problem(await client.get(base + path, headers=bearer(outsider_agent))) == (
            403,
            "order_other_company",
        )
    for path, body in (("/issue", None), ("/void", {"reason": "x"})):
        response = await client.post(base + path, json=body, headers=bearer(outsider_agent))
        assert problem(response) == (403, "order_other_company")
    # An agent of the same company who is not assigned to the project may not act either.
    demo_company = (await client.get("/api/v1/me", headers=bearer(d.agent))).json()
    await create_staff_member(
        session,
        keys,
        name="未分配销售",
        phone="13700000008",
        role=StaffRole.sales_agent,
        company_id=uuid.UUID(demo_company["company"]["id"]),
        now=clock.now(),
    )
    await session.commit()
    unassigned = await login_phone(client, "13700000008")
    for path, body in (("/issue", None), ("/void", {"reason": "x"})):
        response = await client.post(base + path, json=body, headers=bearer(unassigned))
        assert problem(response) == (403, "project_not_assigned")
    assert problem(await client.get("/api/v1/contracts/not-a-uuid", headers=bearer(d.agent))) == (
        404,
        "not_found",
    )

    issued = await client.post(f"{base}/issue", headers=bearer(d.agent))
    assert issued.status_code == 200
    scene = issued.json()["scene"]
    assert problem(await client.post(f"{base}/issue", headers=bearer(d.agent))) == (
        409,
        "order_not_draft",
    )

    # A citizen who is not face verified, and one who is not a party.
    fresh = await login_phone(client, LI.phone)
    assert problem(await scan(client, fresh, scene)) == (403, "face_verification_required")
    wang = await face_verified(client, WANG)
    assert problem(await scan(client, wang, scene)) == (403, "not_a_party")
    assert problem(await scan(client, wang, "NoSuchScene123")) == (404, "scene_unknown")
    assert problem(await scan(client, wang, "bad scene!")) == (404, "scene_unknown")
    for path in ("", "/document", "/events", "/evidence"):
        assert problem(await client.get(base + path, headers=bearer(wang))) == (403, "not_a_party")
    assert problem(await client.post(f"{base}/signatures/challenge", headers=bearer(wang))) == (
        403,
        "not_a_party",
    )
    events = (await client.get(f"{base}/events", headers=bearer(d.agent))).json()["events"]
    assert [e["detail"].get("reason") for e in events if e["type"] == "scan_refused"] == [
        "face_verification_required",
        "not_a_party",
    ]

    zhang = await face_verified(client, ZHANG)
    assert (await scan(client, zhang, scene)).status_code == 200
    # No evidence before completion; the agent voids; nothing more can happen.
    assert problem(await client.get(f"{base}/evidence", headers=bearer(zhang))) == (
        409,
        "evidence_not_ready",
    )
    assert problem(await client.post(f"{base}/seal/challenge", headers=bearer(d.seal_keeper))) == (
        409,
        "not_ready_for_seal",
    )
    voided = await client.post(
        f"{base}/void", json={"reason": "客户改变主意"}, headers=bearer(d.agent)
    )
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    assert problem(await scan(client, zhang, scene)) == (410, "order_voided")
    assert problem(await client.post(f"{base}/signatures/challenge", headers=bearer(zhang))) == (
        410,
        "order_voided",
    )
    assert problem(
        await client.post(f"{base}/void", json={"reason": "again"}, headers=bearer(d.agent))
    ) == (410, "order_voided")
    assert problem(await client.get(f"{base}/qr.png", headers=bearer(d.agent))) == (
        410,
        "order_voided",
    )
    # The unit is free again.
    assert (await create(client, d.agent, order_body(d.units["202"], LI))).status_code == 201


async def test_a_code_for_one_order_cannot_sign_another_and_wrong_codes_count(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    first = await create_issued(client, d, "201", ZHANG)
    second = await create_issued(client, d, "202", ZHANG)
    for issued in (first, second):
        assert (await scan(client, zhang, issued["scene"])).status_code == 200
    a, b = first["order"]["id"], second["order"]["id"]

    challenge = await client.post(
        f"/api/v1/contracts/{a}/signatures/challenge", headers=bearer(zhang)
    )
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": await latest_code(client, ZHANG.phone),
    }
    # Order b has no code yet: the code of order a is no use there.
    refused = await client.post(
        f"/api/v1/contracts/{b}/signatures", json=body, headers=bearer(zhang)
    )
    assert problem(refused) == (400, "otp_not_requested")
    clock.advance(timedelta(seconds=61))
    await client.post(f"/api/v1/contracts/{b}/signatures/challenge", headers=bearer(zhang))
    refused = await client.post(
        f"/api/v1/contracts/{b}/signatures", json=body, headers=bearer(zhang)
    )
    assert problem(refused) == (400, "otp_invalid")
    assert refused.json()["remaining_tries"] == 4
    # A fresh code on b with a's challenge id: the code is right but the challenge is not.
    b_code = await latest_code(client, ZHANG.phone)
    mismatch = await client.post(
        f"/api/v1/contracts/{b}/signatures",
        json={"challenge_id": body["challenge_id"], "code": b_code},
        headers=bearer(zhang),
    )
    assert problem(mismatch) == (409, "challenge_mismatch")
    # a's own code still signs a.
    signed = await client.post(
        f"/api/v1/contracts/{a}/signatures", json=body, headers=bearer(zhang)
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["order"]["status"] == "awaiting_seal"


async def test_a_buyer_declines_and_the_unit_is_released(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    issued = await create_issued(client, d, "301", ZHANG)
    order_id = issued["order"]["id"]
    assert (await scan(client, zhang, issued["scene"])).status_code == 200
    declined = await client.post(
        f"/api/v1/contracts/{order_id}/decline",
        json={"reason": "价格不合适"},
        headers=bearer(zhang),
    )
    assert declined.status_code == 200 and declined.json()["status"] == "voided"
    assert declined.json()["parties"][0]["declined_at"] is not None
    assert problem(await scan(client, zhang, issued["scene"])) == (410, "order_voided")
    assert (await create(client, d.agent, order_body(d.units["301"], ZHANG))).status_code == 201
    events = (
        await client.get(f"/api/v1/contracts/{order_id}/events", headers=bearer(zhang))
    ).json()
    assert [e["type"] for e in events["events"]][-2:] == ["declined", "scan_refused"]
    assert events["events"][-2]["detail"]["reason"] == "价格不合适"
    assert events["events"][-1]["detail"]["reason"] == "order_voided"


async def test_an_order_expires_at_the_end_of_the_next_natural_day(
    mock_app: Litestar,
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    building = d.world["building"]["id"]
    first = await create_issued(client, d, "301", ZHANG)
    second = await create_issued(client, d, "302", ZHANG)
    assert (await scan(client, zhang, first["scene"])).status_code == 200

    # Monday 10:00 in Shanghai -> the end of Tuesday, Shanghai time.
    assert first["expires_at"] in ("2026-11-24T16:00:00Z", "2026-11-24T16:00:00+00:00")
    clock.set(clock.now().replace(hour=15, minute=59))  # Tuesday 23:59 is a day away
    clock.advance(timedelta(days=1))
    # A day later everyone logs in again (sessions end after 30 idle minutes).
    zhang = await login_phone(client, ZHANG.phone)
    d.agent = await login_phone(client, AGENT.phone)
    assert (await scan(client, zhang, second["scene"])).status_code == 200
    clock.advance(timedelta(minutes=1))

    # On access: the scan finds it expired, keeps that, and the unit is free.
    assert problem(await scan(client, zhang, first["scene"])) == (410, "qr_expired")
    assert problem(
        await client.post(
            f"/api/v1/contracts/{first['order']['id']}/signatures/challenge", headers=bearer(zhang)
        )
    ) == (410, "order_expired")
    detail = await client.get(f"/api/v1/contracts/{second['order']['id']}", headers=bearer(zhang))
    assert detail.json()["status"] == "expired"  # reads show it before the sweep
    table = (await client.get(f"/api/v1/public/buildings/{building}/units")).json()
    statuses = {u["room_no"]: u["status"] for u in table["units"]}
    assert statuses["301"] == "available" and statuses["302"] == "available"

    # The sweep (a periodic job of the app's worker loop) expires the rest.
    await mock_app.state.outbox.run_periodic()
    async with database.writer() as writer, writer.begin():
        assert await expire_due_orders(writer, clock.now()) == 0
    events = (
        await client.get(f"/api/v1/contracts/{second['order']['id']}/events", headers=bearer(zhang))
    ).json()["events"]
    assert events[-1]["type"] == "expired" and events[-1]["actor"] == "系统"
    for room in ("301", "302"):
        assert (await create(client, d.agent, order_body(d.units[room], LI))).status_code == 201
    expired = await client.get(
        "/api/v1/contracts", params={"status": "expired"}, headers=bearer(d.agent)
    )
    assert expired.json()["total"] == 2


async def test_seal_keeper_with_totp_must_give_it(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    import pyotp

    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    issued = await create_issued(client, d, "401", ZHANG)
    order_id = issued["order"]["id"]
    assert (await scan(client, zhang, issued["scene"])).status_code == 200
    signed, _ = await sign(client, zhang, order_id, ZHANG.phone)
    assert signed.status_code == 200

    enrolled = await client.post("/api/v1/me/totp", headers=bearer(d.seal_keeper))
    secret = enrolled.json()["secret"]
    totp = pyotp.TOTP(secret)
    confirm = await client.post(
        "/api/v1/me/totp/confirm",
        json={"code": totp.at(clock.now())},
        headers=bearer(d.seal_keeper),
    )
    assert confirm.status_code == 200, confirm.text
    clock.advance(timedelta(seconds=31))

    challenge = await client.post(
        f"/api/v1/contracts/{order_id}/seal/challenge", headers=bearer(d.seal_keeper)
    )
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": await latest_code(client, "13800000002"),
    }
    path = f"/api/v1/contracts/{order_id}/seal"
    missing = await client.post(path, json=body, headers=bearer(d.seal_keeper))
    assert problem(missing) == (401, "totp_required")
    # Buyers and agents cannot seal.
    assert problem(await client.post(path, json=body, headers=bearer(zhang))) == (403, "staff_only")
    assert problem(await client.post(path, json=body, headers=bearer(d.agent))) == (
        403,
        "role_forbidden",
    )
    sealed = await client.post(
        path, json={**body, "totp_code": totp.at(clock.now())}, headers=bearer(d.seal_keeper)
    )
    assert sealed.status_code == 200, sealed.text
    again = await client.post(
        f"/api/v1/contracts/{order_id}/seal/challenge", headers=bearer(d.seal_keeper)
    )
    assert problem(again) == (409, "already_sealed")
    assert problem(
        await client.post(
            f"/api/v1/contracts/{order_id}/void", json={"reason": "x"}, headers=bearer(d.agent)
        )
    ) == (409, "order_completed")


async def test_public_verify_limits_wrong_guesses_per_ip(
    client: httpx.AsyncClient, clock: MovableClock
) -> None:
    for n in range(20):
        answer = await client.get(
            "/api/v1/public/verify", params={"number": f"YS2026{n:08d}", "password": "12345678"}
        )
        assert answer.status_code == 200 and answer.json()["genuine"] is False
    limited = await client.get(
        "/api/v1/public/verify", params={"number": "YS202699999999", "password": "12345678"}
    )
    assert problem(limited) == (429, "rate_limited")
    assert "Retry-After" in limited.headers
    missing = await client.get("/api/v1/public/verify", params={"number": "x"})
    assert missing.status_code == 422
    clock.advance(timedelta(hours=1))
    again = await client.get(
        "/api/v1/public/verify", params={"number": "YS202699999999", "password": "12345678"}
    )
    assert again.status_code == 200


async def test_presale_needs_an_approved_supervised_account(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    from api.demo import load_demo_world

    world = await load_demo_world(session, keys, now=clock.now(), supervised_account=False)
    await session.commit()
    agent = await login_phone(mock_client, AGENT.phone)
    unit = next(u["id"] for u in world["units"] if u["room_no"] == "301")
    refused = await create(mock_client, agent, order_body(unit, ZHANG))
    assert problem(refused) == (409, "supervised_account_missing")
