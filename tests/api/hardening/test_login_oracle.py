"""Finding 9 of the outside review: /auth/sms/verify told phones that had ever logged in
(409 otp_used) from the others (400 otp_not_requested). It answers alike now."""

from __future__ import annotations

from datetime import timedelta

import httpx

from api.core.clock import MovableClock
from tests.api.identity.helpers import login_phone, send_code, verify

KNOWN = "13900000031"  # has logged in
STRANGER = "13900000032"  # never asked for a code
EXPIRED = "13900000033"  # asked once, long ago


def _shape(response: httpx.Response) -> tuple[int, str, str, list[str]]:
    body = response.json()
    extra = sorted(set(body) - {"request_id", "instance"})
    return response.status_code, body["code"], body["detail"], extra


async def test_verify_answers_alike_for_phones_with_and_without_a_past_login(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    await login_phone(mock_client, KNOWN)
    await send_code(mock_client, EXPIRED)
    clock.advance(timedelta(minutes=6))
    answers = {
        phone: await verify(mock_client, phone, "123456") for phone in (KNOWN, STRANGER, EXPIRED)
    }
    shapes = {phone: _shape(answer) for phone, answer in answers.items()}
    assert shapes[KNOWN] == shapes[STRANGER] == shapes[EXPIRED], shapes
    assert shapes[KNOWN][:2] == (400, "otp_expired")


async def test_the_code_just_used_cannot_be_told_from_no_code(
    mock_client: httpx.AsyncClient,
) -> None:
    code = await send_code(mock_client, KNOWN)
    assert (await verify(mock_client, KNOWN, code)).status_code == 200
    reused = await verify(mock_client, KNOWN, code)
    never = await verify(mock_client, STRANGER, code)
    assert _shape(reused) == _shape(never)
