"""Finding 8 of the outside review: 25 wrong TOTP codes at the seal got 25 × 401. TOTP
failures now count under the SMS codes' policy: the 5th wrong one locks for 30 minutes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pyotp
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from tests.api.contracts.helpers import (
    SEAL_KEEPER,
    ZHANG,
    Demo,
    create_issued,
    demo,
    face_verified,
    latest_code,
    problem,
    scan,
    sign,
)
from tests.api.identity.helpers import bearer, send_code, verify


async def _enroll(client: httpx.AsyncClient, token: str, clock: MovableClock) -> pyotp.TOTP:
    enrolled = await client.post("/api/v1/me/totp", headers=bearer(token))
    totp = pyotp.TOTP(enrolled.json()["secret"])
    confirm = await client.post(
        "/api/v1/me/totp/confirm", json={"code": totp.at(clock.now())}, headers=bearer(token)
    )
    assert confirm.status_code == 200, confirm.text
    clock.advance(timedelta(seconds=31))
    return totp


def _not(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def _order_to_seal(client: httpx.AsyncClient, d: Demo) -> str:
    zhang = await face_verified(client, ZHANG)
    issued = await create_issued(client, d, "401", ZHANG)
    order_id = issued["order"]["id"]
    assert (await scan(client, zhang, issued["scene"])).status_code == 200
    signed, _ = await sign(client, zhang, order_id, ZHANG.phone)
    assert signed.status_code == 200, signed.text
    return order_id


async def test_wrong_totp_codes_at_the_seal_lock_after_five(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    order_id = await _order_to_seal(client, d)
    totp = await _enroll(client, d.seal_keeper, clock)
    challenge = await client.post(
        f"/api/v1/contracts/{order_id}/seal/challenge", headers=bearer(d.seal_keeper)
    )
    body: dict[str, Any] = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": await latest_code(client, SEAL_KEEPER.phone),
    }
    path = f"/api/v1/contracts/{order_id}/seal"

    answers = []
    for _ in range(25):
        wrong = {**body, "totp_code": _not(totp.at(clock.now()))}
        answers.append(await client.post(path, json=wrong, headers=bearer(d.seal_keeper)))
    assert [problem(a) for a in answers[:4]] == [(401, "totp_invalid")] * 4
    assert [a.json()["remaining_tries"] for a in answers[:4]] == [4, 3, 2, 1]
    assert {problem(a) for a in answers[4:]} == {(429, "totp_locked")}
    assert int(answers[-1].headers["Retry-After"]) == 30 * 60
    # Locked: the right code too, as for SMS codes.
    right = await client.post(
        path, json={**body, "totp_code": totp.at(clock.now())}, headers=bearer(d.seal_keeper)
    )
    assert problem(right) == (429, "totp_locked")

    clock.advance(timedelta(minutes=30))  # the lock has run out (and the idle login too)
    code = await send_code(client, SEAL_KEEPER.phone)
    again = await verify(client, SEAL_KEEPER.phone, code, totp_code=totp.at(clock.now()))
    assert again.status_code == 200, again.text
    keeper = again.json()["token"]
    clock.advance(timedelta(seconds=31))
    challenge = await client.post(
        f"/api/v1/contracts/{order_id}/seal/challenge", headers=bearer(keeper)
    )
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": await latest_code(client, SEAL_KEEPER.phone),
        "totp_code": totp.at(clock.now()),
    }
    sealed = await client.post(path, json=body, headers=bearer(keeper))
    assert sealed.status_code == 200, sealed.text


async def test_wrong_totp_codes_at_staff_login_lock_too_and_a_right_one_resets(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    totp = await _enroll(client, d.seal_keeper, clock)

    async def login(right: bool) -> httpx.Response:
        clock.advance(timedelta(seconds=61))
        await send_code(client, SEAL_KEEPER.phone)
        code = await latest_code(client, SEAL_KEEPER.phone)
        now_code = totp.at(clock.now())
        return await verify(
            client, SEAL_KEEPER.phone, code, totp_code=now_code if right else _not(now_code)
        )

    for remaining in (4, 3):
        refused = await login(right=False)
        assert problem(refused) == (401, "totp_invalid")
        assert refused.json()["remaining_tries"] == remaining
    ok = await login(right=True)
    assert ok.status_code == 200, ok.text  # a right code forgets the failures
    for remaining in (4, 3, 2, 1):
        clock.advance(timedelta(minutes=4))  # inside the send quota of 5 per 10 minutes
        refused = await login(right=False)
        assert refused.json()["remaining_tries"] == remaining, refused.text
    clock.advance(timedelta(minutes=4))
    assert problem(await login(right=False)) == (429, "totp_locked")
