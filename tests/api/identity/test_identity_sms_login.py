"""Phone + SMS code login: the one-time code rules over HTTP, sessions and logout."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.idempotency import IdempotencyRecord
from api.core.ratelimit import create_store
from api.db.engine import Database
from api.identity.models import AuthSession, Citizen, OtpChallengeRecord, SmsSend
from tests.api.identity.helpers import (
    bearer,
    inbox,
    login_phone,
    me,
    send_code,
    verify,
    wrong,
)

PHONE = "13912345678"


async def test_a_citizen_logs_in_with_a_code_and_sees_a_masked_profile(
    mock_client: httpx.AsyncClient, session: AsyncSession, clock: MovableClock
) -> None:
    code = await send_code(mock_client, PHONE)
    assert len(code) == 6 and code.isdigit()
    answer = await verify(mock_client, PHONE, code)
    assert answer.status_code == 200
    body = answer.json()
    assert body["kind"] == "citizen" and body["idle_minutes"] == 30
    profile = await me(mock_client, body["token"])
    assert profile["kind"] == "citizen" and profile["roles"] == ["citizen"]
    assert profile["phone_masked"] == "139****5678"
    assert profile["identity_level"] == "none" and profile["id_number_masked"] is None
    assert PHONE not in (await mock_client.get("/api/v1/me", headers=bearer(body["token"]))).text

    # The code is kept only as a keyed hash; the token only as a hash.
    row = await session.scalar(select(OtpChallengeRecord))
    assert row is not None and code not in row.code_hash and row.used_at is not None
    stored = await session.scalar(select(AuthSession.token_hash))
    assert stored is not None and body["token"] not in stored
    await session.commit()  # let go of the write lock (SQLite) before the app writes

    # Logging in again finds the same account.
    clock.advance(timedelta(minutes=1))
    again = await login_phone(mock_client, PHONE)
    assert (await me(mock_client, again))["id"] == profile["id"]
    assert await session.scalar(select(func.count()).select_from(Citizen)) == 1


async def test_send_answers_the_same_for_known_unknown_and_staff_phones(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    await login_phone(mock_client, PHONE)  # PHONE now has an account
    clock.advance(timedelta(minutes=2))
    answers = []
    for phone in (PHONE, "13700000000", "13800000001"):
        response = await mock_client.post("/api/v1/auth/sms/send", json={"phone": phone})
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0] == (200, {"sent": True, "expires_in": 300, "resend_after": 60})


@pytest.mark.parametrize("phone", ["1391234567", "23912345678", "139-1234-5678", "abc", ""])
async def test_malformed_phones_are_refused(mock_client: httpx.AsyncClient, phone: str) -> None:
    sent = await mock_client.post("/api/v1/auth/sms/send", json={"phone": phone})
    assert sent.status_code == 422 and sent.json()["code"] == "phone_invalid"
    checked = await verify(mock_client, phone, "123456")
    assert checked.status_code == 422 and checked.json()["code"] == "phone_invalid"


async def test_unknown_fields_are_refused(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.post("/api/v1/auth/sms/send", json={"phone": PHONE, "debug": True})
    assert response.status_code == 422 and response.json()["code"] == "unknown_field"


async def test_verify_without_a_code_sent(mock_client: httpx.AsyncClient) -> None:
    response = await verify(mock_client, PHONE, "123456")
    # The same answer as a used or expired code: no phone's login history shows.
    assert response.status_code == 400 and response.json()["code"] == "otp_expired"


async def test_wrong_codes_tell_the_remaining_tries_then_lock(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    code = await send_code(mock_client, PHONE)
    for remaining in (4, 3, 2, 1):
        response = await verify(mock_client, PHONE, wrong(code))
        assert response.status_code == 400
        assert response.json()["code"] == "otp_invalid"
        assert response.json()["remaining_tries"] == remaining
    fifth = await verify(mock_client, PHONE, wrong(code))
    assert fifth.status_code == 429 and fifth.json()["code"] == "otp_locked"
    assert int(fifth.headers["Retry-After"]) == 30 * 60
    # Dead: the right code no longer works, and no new code can be asked for while locked.
    right = await verify(mock_client, PHONE, code)
    assert right.status_code == 429 and right.json()["code"] == "otp_locked"
    clock.advance(timedelta(minutes=2))
    refused = await mock_client.post("/api/v1/auth/sms/send", json={"phone": PHONE})
    assert refused.status_code == 429 and refused.json()["code"] == "otp_locked"
    # Once the lock has run out, a new code works.
    clock.advance(timedelta(minutes=29))
    assert await login_phone(mock_client, PHONE)


async def test_a_new_code_does_not_reset_the_failure_count(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    code = await send_code(mock_client, PHONE)
    for _ in range(3):
        await verify(mock_client, PHONE, wrong(code))
    clock.advance(timedelta(seconds=61))
    fresh = await send_code(mock_client, PHONE)
    response = await verify(mock_client, PHONE, wrong(fresh))
    assert response.json()["remaining_tries"] == 1
    locked = await verify(mock_client, PHONE, wrong(fresh))
    assert locked.json()["code"] == "otp_locked"


async def test_malformed_codes_count_as_wrong_tries(mock_client: httpx.AsyncClient) -> None:
    await send_code(mock_client, PHONE)
    response = await verify(mock_client, PHONE, "12ab")
    assert response.status_code == 400 and response.json()["remaining_tries"] == 4


async def test_expired_and_reused_codes(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    code = await send_code(mock_client, PHONE)
    clock.advance(timedelta(minutes=5))
    expired = await verify(mock_client, PHONE, code)
    assert expired.status_code == 400 and expired.json()["code"] == "otp_expired"

    code = await send_code(mock_client, PHONE)
    clock.advance(timedelta(minutes=4, seconds=59))
    assert (await verify(mock_client, PHONE, code)).status_code == 200
    reused = await verify(mock_client, PHONE, code)
    assert reused.status_code == 400 and reused.json()["code"] == "otp_expired"


async def test_resend_waits_60_seconds_and_sends_are_counted_per_phone(
    mock_client: httpx.AsyncClient, clock: MovableClock, session: AsyncSession
) -> None:
    await send_code(mock_client, PHONE)
    clock.advance(timedelta(seconds=30))
    soon = await mock_client.post("/api/v1/auth/sms/send", json={"phone": PHONE})
    assert soon.status_code == 429 and soon.json()["code"] == "otp_resend_too_soon"
    assert soon.headers["Retry-After"] == "30" and soon.json()["retry_after"] == 30
    for _ in range(4):
        clock.advance(timedelta(seconds=60))
        await send_code(mock_client, PHONE)
    # Five sends inside ten minutes: the sixth waits for the first to age out.
    clock.advance(timedelta(seconds=60))
    over = await mock_client.post("/api/v1/auth/sms/send", json={"phone": PHONE})
    assert over.status_code == 429 and over.json()["code"] == "otp_send_limit"
    assert over.json()["retry_after"] == 10 * 60 - 5 * 60 - 30
    assert len(await inbox(mock_client, PHONE)) == 5
    assert await session.scalar(select(func.count()).select_from(SmsSend)) == 5
    await session.commit()


async def test_at_most_20_sends_per_phone_per_day(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    for _ in range(4):
        for _ in range(5):
            await send_code(mock_client, PHONE)
            clock.advance(timedelta(seconds=61))
        clock.advance(timedelta(minutes=10))
    over = await mock_client.post("/api/v1/auth/sms/send", json={"phone": PHONE})
    assert over.status_code == 429 and over.json()["code"] == "otp_send_limit"
    assert over.json()["retry_after"] > 20 * 3600
    # Another phone is not affected.
    assert await send_code(mock_client, "13700000000")


async def test_two_concurrent_guesses_are_both_counted(
    mock_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await send_code(mock_client, PHONE)
    for _ in range(3):
        await verify(mock_client, PHONE, wrong(code))
    answers = await asyncio.gather(
        verify(mock_client, PHONE, wrong(code)), verify(mock_client, PHONE, wrong(code))
    )
    codes = sorted(a.json()["code"] for a in answers)
    assert codes == ["otp_invalid", "otp_locked"]
    row = await session.scalar(select(OtpChallengeRecord))
    assert row is not None and row.failures == 5
    await session.commit()


async def test_two_concurrent_uses_of_one_code_log_in_once(mock_client: httpx.AsyncClient) -> None:
    code = await send_code(mock_client, PHONE)
    answers = await asyncio.gather(
        verify(mock_client, PHONE, code), verify(mock_client, PHONE, code)
    )
    assert [a.status_code for a in answers].count(200) == 1
    refused = next(a for a in answers if a.status_code != 200)
    # Used by the other (answered like no code at all, finding 9) or lost the race.
    assert (refused.status_code, refused.json()["code"]) in {
        (400, "otp_expired"),
        (409, "otp_conflict"),
    }


async def test_sessions_expire_when_idle_and_absolutely(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    token = await login_phone(mock_client, PHONE)
    clock.advance(timedelta(minutes=29))
    assert (await mock_client.get("/api/v1/me", headers=bearer(token))).status_code == 200
    clock.advance(timedelta(minutes=29))  # 58 minutes after login, 29 after the last request
    assert (await mock_client.get("/api/v1/me", headers=bearer(token))).status_code == 200
    clock.advance(timedelta(minutes=30))
    idle = await mock_client.get("/api/v1/me", headers=bearer(token))
    assert idle.status_code == 401 and idle.json()["code"] == "session_expired"

    clock.advance(timedelta(minutes=2))
    token = await login_phone(mock_client, PHONE)
    for _ in range(12 * 3 - 1):  # busy all day, a request every 20 minutes
        clock.advance(timedelta(minutes=20))
        assert (await mock_client.get("/api/v1/me", headers=bearer(token))).status_code == 200
    clock.advance(timedelta(minutes=20))
    late = await mock_client.get("/api/v1/me", headers=bearer(token))
    assert late.status_code == 401 and late.json()["code"] == "session_expired"


async def test_logout_ends_the_session(mock_client: httpx.AsyncClient) -> None:
    token = await login_phone(mock_client, PHONE)
    assert (await mock_client.post("/api/v1/auth/logout", headers=bearer(token))).status_code == 204
    after = await mock_client.get("/api/v1/me", headers=bearer(token))
    assert after.status_code == 401 and after.json()["code"] == "session_invalid"


async def test_no_or_bad_token(mock_client: httpx.AsyncClient) -> None:
    missing = await mock_client.get("/api/v1/me")
    assert missing.status_code == 401 and missing.json()["code"] == "not_authenticated"
    forged = await mock_client.get("/api/v1/me", headers=bearer("not-a-token"))
    assert forged.status_code == 401 and forged.json()["code"] == "session_invalid"
    basic = await mock_client.get("/api/v1/me", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401 and basic.json()["code"] == "not_authenticated"


async def test_auth_endpoints_are_rate_limited_per_ip_and_per_phone(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    for i in range(30):
        response = await verify(mock_client, f"137000000{i:02d}", "123456")
        assert response.json()["code"] == "otp_expired"
    limited = await verify(mock_client, "13700000099", "123456")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    clock.advance(timedelta(minutes=1))
    assert (await verify(mock_client, "13700000099", "123456")).status_code == 400

    # Per phone: 30 an hour, whatever the IP address.
    for _ in range(30):
        clock.advance(timedelta(seconds=61))
        await verify(mock_client, PHONE, "123456")
    clock.advance(timedelta(seconds=61))
    by_phone = await verify(mock_client, PHONE, "123456")
    assert by_phone.status_code == 429 and by_phone.json()["limit"] == "auth-phone"


async def test_a_code_is_bound_to_its_phone(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    other = "13700000000"
    code = await send_code(mock_client, PHONE)
    await send_code(mock_client, other)
    crossed = await verify(mock_client, other, code)
    if code != (await inbox(mock_client, other))[0]["params"]["code"]:
        assert crossed.status_code == 400 and crossed.json()["code"] == "otp_invalid"
    assert (await verify(mock_client, PHONE, code)).status_code == 200


async def test_a_failed_sms_delivery_spends_no_quota(mock_client: httpx.AsyncClient) -> None:
    fault = {"next_code": "SYSTEM_BUSY", "status": 503}
    assert (await mock_client.post("/mock/sms/faults", json=fault)).status_code == 200
    failed = await mock_client.post("/api/v1/auth/sms/send", json={"phone": PHONE})
    assert failed.status_code == 503 and failed.json()["code"] == "sms_unavailable"
    assert await inbox(mock_client, PHONE) == []
    # Nothing was recorded: no resend wait, and the code that does arrive works.
    assert (
        await verify(mock_client, PHONE, await send_code(mock_client, PHONE))
    ).status_code == 200


def test_rate_limit_store_is_memory_by_default_and_redis_when_configured() -> None:
    assert isinstance(create_store(""), MemoryStore)
    assert isinstance(create_store("redis://127.0.0.1:6379/0"), RedisStore)  # lazy: no connection


async def test_a_login_answer_is_never_stored_by_the_idempotency_key(
    mock_client: httpx.AsyncClient, database: Database
) -> None:
    """The bearer token must not sit in clear in the idempotency table."""
    code = await send_code(mock_client, "13900000001")
    answer = await mock_client.post(
        "/api/v1/auth/sms/verify",
        json={"phone": "13900000001", "code": code},
        headers={"Idempotency-Key": "login-1"},
    )
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    token = answer.json()["token"]
    async with database.reader() as session:
        stored = list(await session.scalars(select(IdempotencyRecord.response_body)))
    assert all(token.encode() not in (body or b"") for body in stored)
    again = await mock_client.post(
        "/api/v1/auth/sms/verify",
        json={"phone": "13900000001", "code": code},
        headers={"Idempotency-Key": "login-1"},
    )
    assert again.status_code == 400 and again.json()["code"] == "otp_expired"
