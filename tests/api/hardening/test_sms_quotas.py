"""Finding 2 of the outside review: anonymous /auth/sms/send shared the per-phone quota
(5 per 10 min, 20 per day) with signing and sealing codes, so 20 anonymous sends kept a
buyer or a seal keeper from signing for up to a day. Quotas are per purpose; anonymous
sends have their own per-IP budget; login traffic never blocks a logged-in party's code."""

from __future__ import annotations

from datetime import timedelta

import httpx
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from tests.api.contracts.helpers import (
    SEAL_KEEPER,
    ZHANG,
    create_issued,
    demo,
    face_verified,
    finish_face_page,
    problem,
    scan,
    seal,
    sign,
)
from tests.api.identity.helpers import bearer, wrong


async def _send_from(app: Litestar, ip: str, phone: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.post("/api/v1/auth/sms/send", json={"phone": phone})


async def _exhaust_login_quota(
    app: Litestar, client: httpx.AsyncClient, clock: MovableClock, phone: str, keep: list[str]
) -> None:
    """What the attacker did: anonymous sends (from many addresses) as fast as the login
    quota allows, until the day's quota is spent, keeping the victims' sessions alive."""
    n = 0
    while True:
        n += 1
        answer = await _send_from(app, f"10.7.{n // 200}.{n % 200}", phone)
        wait = 61
        if answer.status_code != 200:
            assert problem(answer) in {
                (429, "otp_resend_too_soon"),
                (429, "otp_send_limit"),
                (429, "rate_limited"),  # auth requests per phone and hour
            }
            wait = max(wait, int(answer.headers["Retry-After"]))
            if problem(answer) == (429, "otp_send_limit") and wait > 3600:
                return  # the day's 20 login codes are spent
        while wait > 0:  # the victims stay active (sessions end after 30 idle minutes)
            step = min(wait, 600)
            clock.advance(timedelta(seconds=step))
            wait -= step
            for token in keep:
                assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200


async def test_anonymous_sends_do_not_spend_a_buyers_or_a_seal_keepers_codes(
    mock_app: Litestar,
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    issued = await create_issued(client, d, "201", ZHANG)
    order_id = issued["order"]["id"]
    assert (await scan(client, zhang, issued["scene"])).status_code == 200

    await _exhaust_login_quota(
        mock_app, client, clock, ZHANG.phone, [zhang, d.seal_keeper, d.agent]
    )
    await _exhaust_login_quota(
        mock_app, client, clock, SEAL_KEEPER.phone, [zhang, d.seal_keeper, d.agent]
    )
    # The face check is older than 10 minutes by now: the buyer passes it again (logged in).
    face = (await client.post("/api/v1/me/face-sessions", headers=bearer(zhang))).json()
    await finish_face_page(client, face["url"])
    await client.get(f"/api/v1/me/face-sessions/{face['id']}", headers=bearer(zhang))

    signed, _ = await sign(client, zhang, order_id, ZHANG.phone)
    assert signed.status_code == 200, signed.text
    sealed = await seal(client, d, order_id)
    assert sealed.status_code == 200, sealed.text


async def test_one_send_and_five_wrong_guesses_do_not_lock_a_party_out_of_signing(
    mock_app: Litestar,
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    issued = await create_issued(client, d, "201", ZHANG)
    order_id = issued["order"]["id"]
    assert (await scan(client, zhang, issued["scene"])).status_code == 200

    clock.advance(timedelta(seconds=61))
    assert (await _send_from(mock_app, "10.6.0.1", ZHANG.phone)).status_code == 200
    for _ in range(5):
        guessed = await client.post(
            "/api/v1/auth/sms/verify", json={"phone": ZHANG.phone, "code": wrong("000000")}
        )
    assert problem(guessed) == (429, "otp_locked")  # login is locked for 30 minutes ...
    signed, _ = await sign(client, zhang, order_id, ZHANG.phone)  # ... signing is not
    assert signed.status_code == 200, signed.text


async def test_anonymous_sends_have_a_budget_per_address(
    mock_app: Litestar, clock: MovableClock
) -> None:
    answers = []
    for n in range(31):
        clock.advance(timedelta(seconds=3))  # under the 30 auth requests a minute
        answers.append(await _send_from(mock_app, "10.5.0.1", f"1370000{n:04d}"))
    assert [a.status_code for a in answers[:30]] == [200] * 30
    assert problem(answers[30]) == (429, "rate_limited")
    assert answers[30].json()["limit"] == "sms-send-ip"
