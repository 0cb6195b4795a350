"""WeChat login, binding a phone, real-name (实名) and face verification (人脸核身)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import PEOPLE
from api.identity import verification
from api.identity.consent import PI_NOTICE_VERSION
from api.identity.face_providers import FaceCheck, FaceOutcome, FaceStart
from api.identity.models import Citizen, IdentityLevel, PrincipalKind
from api.identity.principal import Principal
from api.identity.profile import set_citizen_phone
from api.settings import Settings
from api.tables import metadata
from tests.api.identity.helpers import (
    agree_to_pi_notice,
    bearer,
    login_phone,
    me,
    resident_id,
    send_code,
    wechat_code,
    wrong,
)
from tests.conftest import PG_URL

ZHANG = next(p for p in PEOPLE if p.name == "张三")
LI = next(p for p in PEOPLE if p.name == "李四")
UNREGISTERED_ID = resident_id("11010519880808008")  # valid, but not in the mock registry


async def wechat_login(client: httpx.AsyncClient, user: str) -> httpx.Response:
    code = await wechat_code(client, user)
    return await client.post("/api/v1/auth/wechat", json={"code": code})


async def real_name(
    client: httpx.AsyncClient, token: str, name: str, id_number: str
) -> httpx.Response:
    await agree_to_pi_notice(client, token)
    return await client.post(
        "/api/v1/me/real-name", json={"name": name, "id_number": id_number}, headers=bearer(token)
    )


# ------------------------------------------------------------------ WeChat


async def test_wechat_login_gives_a_session_for_a_stable_account(
    mock_client: httpx.AsyncClient,
) -> None:
    first = await wechat_login(mock_client, "alice")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["kind"] == "citizen" and body["phone_bound"] is False
    profile = await me(mock_client, body["token"])
    assert profile["wechat_bound"] is True and profile["phone_masked"] is None
    again = (await wechat_login(mock_client, "alice")).json()
    assert (await me(mock_client, again["token"]))["id"] == profile["id"]
    other = (await wechat_login(mock_client, "bob")).json()
    assert (await me(mock_client, other["token"]))["id"] != profile["id"]


async def test_wechat_errors_become_clear_problems(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    unknown = await mock_client.post("/api/v1/auth/wechat", json={"code": "no-such-code"})
    assert unknown.status_code == 401 and unknown.json()["code"] == "wechat_code_invalid"

    code = await wechat_code(mock_client, "alice")
    assert (await mock_client.post("/api/v1/auth/wechat", json={"code": code})).status_code == 200
    used = await mock_client.post("/api/v1/auth/wechat", json={"code": code})
    assert used.status_code == 401 and used.json()["code"] == "wechat_code_used"

    stale = await wechat_code(mock_client, "alice")
    clock.advance(timedelta(minutes=5))
    expired = await mock_client.post("/api/v1/auth/wechat", json={"code": stale})
    assert expired.json()["code"] == "wechat_code_invalid"

    expected = {
        "risky": (403, "wechat_risky_user"),
        "busy": (503, "wechat_busy"),
        "ratelimited": (429, "wechat_rate_limited"),
    }
    for user, (status, problem) in expected.items():
        response = await wechat_login(mock_client, user)
        assert (response.status_code, response.json()["code"]) == (status, problem)

    # Our own credentials refused: an outage for the user, not their fault.
    await mock_client.post("/mock/wechat/faults", json={"next_errcode": 40125})
    misconfigured = await wechat_login(mock_client, "alice")
    assert misconfigured.status_code == 503
    assert misconfigured.json()["code"] == "wechat_unavailable"


async def test_without_configured_services_logins_are_unavailable(
    client: httpx.AsyncClient,
) -> None:
    wechat = await client.post("/api/v1/auth/wechat", json={"code": "x"})
    assert wechat.status_code == 503 and wechat.json()["code"] == "wechat_unavailable"
    sms = await client.post("/api/v1/auth/sms/send", json={"phone": "13912345678"})
    assert sms.status_code == 503 and sms.json()["code"] == "sms_unavailable"


async def test_a_wechat_user_binds_a_phone_with_a_code(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    token = (await wechat_login(mock_client, "alice")).json()["token"]
    phone = "13912345678"
    code = await send_code(mock_client, phone)
    bad = await mock_client.post(
        "/api/v1/me/phone", json={"phone": phone, "code": wrong(code)}, headers=bearer(token)
    )
    assert bad.status_code == 400 and bad.json()["remaining_tries"] == 4
    bound = await mock_client.post(
        "/api/v1/me/phone", json={"phone": phone, "code": code}, headers=bearer(token)
    )
    assert bound.status_code == 200 and bound.json()["phone_masked"] == "139****5678"
    # The phone now logs into the same account.
    clock.advance(timedelta(minutes=1))
    by_phone = await login_phone(mock_client, phone)
    assert (await me(mock_client, by_phone))["id"] == bound.json()["id"]

    # Another WeChat user cannot take that phone: it has a WeChat login already.
    clock.advance(timedelta(minutes=1))
    other = (await wechat_login(mock_client, "bob")).json()["token"]
    code = await send_code(mock_client, phone)
    taken = await mock_client.post(
        "/api/v1/me/phone", json={"phone": phone, "code": code}, headers=bearer(other)
    )
    assert taken.status_code == 409 and taken.json()["code"] == "phone_taken"


async def test_binding_the_phone_of_an_app_account_joins_the_two(
    mock_client: httpx.AsyncClient, clock: MovableClock, session: AsyncSession
) -> None:
    phone = "13912345678"
    app_account = await login_phone(mock_client, phone)
    first = await me(mock_client, app_account)
    wechat_token = (await wechat_login(mock_client, "alice")).json()["token"]
    assert (await me(mock_client, wechat_token))["id"] != first["id"]
    clock.advance(timedelta(minutes=1))
    code = await send_code(mock_client, phone)
    joined = await mock_client.post(
        "/api/v1/me/phone", json={"phone": phone, "code": code}, headers=bearer(wechat_token)
    )
    assert joined.status_code == 200, joined.text
    assert joined.json()["id"] == first["id"] and joined.json()["wechat_bound"] is True
    # The WeChat session, and every later WeChat login, is the phone's account now.
    assert (await me(mock_client, wechat_token))["id"] == first["id"]
    again = (await wechat_login(mock_client, "alice")).json()
    assert again["phone_bound"] is True
    assert (await me(mock_client, again["token"]))["id"] == first["id"]
    assert await session.scalar(select(func.count()).select_from(Citizen)) == 1
    await session.commit()


async def test_a_bound_account_cannot_bind_another_phone(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    token = await login_phone(mock_client, "13912345678")
    refused = await mock_client.post(
        "/api/v1/me/phone", json={"phone": "13700000000", "code": "123456"}, headers=bearer(token)
    )
    assert refused.status_code == 409 and refused.json()["code"] == "phone_already_bound"


# ------------------------------------------------------------------ real name


@pytest.mark.parametrize(
    ("id_number", "problem"),
    [
        ("11010519910505", "id_number_format"),
        ("1101051991050500A", "id_number_format"),
        (resident_id("11010519910230005"), "id_number_birth_date"),  # 30 February
        (resident_id("11010520991231005"), "id_number_birth_date"),  # not born yet
        (
            ZHANG.id_number[:17] + ("0" if ZHANG.id_number[17] != "0" else "1"),
            "id_number_check_char",
        ),
    ],
)
async def test_bad_id_numbers_get_distinct_problems(
    mock_client: httpx.AsyncClient, id_number: str, problem: str
) -> None:
    token = await login_phone(mock_client, ZHANG.phone)
    response = await real_name(mock_client, token, ZHANG.name, id_number)
    assert response.status_code == 422 and response.json()["code"] == problem
    assert (await me(mock_client, token))["identity_level"] == "none"


async def test_real_name_is_checked_by_the_provider_and_shown_masked(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    token = await login_phone(mock_client, ZHANG.phone)
    mismatch = await real_name(mock_client, token, "张四", ZHANG.id_number)
    assert mismatch.status_code == 422 and mismatch.json()["code"] == "real_name_mismatch"
    unknown = await real_name(mock_client, token, ZHANG.name, UNREGISTERED_ID)
    assert unknown.status_code == 422 and unknown.json()["code"] == "real_name_mismatch"

    done = await real_name(mock_client, token, ZHANG.name, ZHANG.id_number.lower())
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["identity_level"] == "real_name" and body["name"] == ZHANG.name
    assert body["id_number_masked"] == ZHANG.id_number[:4] + "*" * 10 + ZHANG.id_number[-4:]
    assert ZHANG.id_number not in done.text
    assert ZHANG.id_number not in (await mock_client.get("/api/v1/me", headers=bearer(token))).text
    # Saying it again is fine; another identity is not.
    assert (await real_name(mock_client, token, ZHANG.name, ZHANG.id_number)).status_code == 200
    other = await real_name(mock_client, token, LI.name, LI.id_number)
    assert other.status_code == 409 and other.json()["code"] == "real_name_already_set"

    # One identity, one account: kept at the face check, not by the claim (which would
    # tell which numbers are registered; tests/api/hardening/test_real_name_claims.py).
    clock.advance(timedelta(minutes=1))
    second = await login_phone(mock_client, LI.phone)
    claimed = await real_name(mock_client, second, ZHANG.name, ZHANG.id_number)
    assert claimed.status_code == 200


async def _stored_bytes(settings: Settings, database: Database) -> bytes:
    """Everything the database holds: the SQLite files byte for byte, or on PostgreSQL
    every row of every table as text."""
    if not PG_URL:
        return b"".join(
            path.read_bytes() for path in settings.data_dir.glob("wangqian.db*") if path.is_file()
        )
    chunks: list[str] = []
    async with database.reader() as session:
        for table in metadata.sorted_tables:
            # Table names come from our own metadata, not from input.
            query = f'SELECT row_to_json(t)::text FROM "{table.name}" t'  # noqa: S608
            rows = await session.execute(text(query))
            chunks.extend(row[0] for row in rows)
    return "\n".join(chunks).encode()


async def test_the_database_holds_no_id_number_in_plain_text(
    mock_client: httpx.AsyncClient, settings: Settings, clock: MovableClock, database: Database
) -> None:
    for person in (ZHANG, LI):
        token = await login_phone(mock_client, person.phone)
        assert (
            await real_name(mock_client, token, person.name, person.id_number)
        ).status_code == 200
        clock.advance(timedelta(minutes=1))
    raw = await _stored_bytes(settings, database)
    assert len(raw) > 0
    for person in (ZHANG, LI):
        for form in (person.id_number, person.id_number[:17], person.id_number[6:14]):
            assert form.encode() not in raw, form
            assert form.encode("utf-16-le") not in raw
        assert person.id_number[:4].encode() + b"**********" in raw  # the masked form is there


# ------------------------------------------------------------------ face verification


async def finish_face_page(client: httpx.AsyncClient, url: str, result: str) -> None:
    """What the citizen's browser does on the provider's page."""
    parts = urlsplit(url)
    assert parts.path == "/mock/face/page"
    token = parse_qs(parts.query)["biz_token"][0]
    page = await client.get(parts.path, params={"biz_token": token})
    assert page.status_code == 200
    done = await client.post(
        "/mock/face/page/complete", data={"biz_token": token, "result": result}
    )
    assert done.status_code == 303
    assert done.headers["location"].startswith("http://testserver/api/v1/auth/face-return")
    assert (await client.get("/api/v1/auth/face-return")).status_code == 200


async def real_named(client: httpx.AsyncClient, person: object) -> str:
    token = await login_phone(client, person.phone)  # type: ignore[attr-defined]
    response = await real_name(client, token, person.name, person.id_number)  # type: ignore[attr-defined]
    assert response.status_code == 200
    return token


async def test_a_demo_citizen_reaches_face_verified_through_the_mocks(
    mock_client: httpx.AsyncClient,
) -> None:
    # The mini program way: WeChat login, bind the phone, consent, real name, face.
    token = (await wechat_login(mock_client, "zhangsan")).json()["token"]
    code = await send_code(mock_client, ZHANG.phone)
    bound = await mock_client.post(
        "/api/v1/me/phone", json={"phone": ZHANG.phone, "code": code}, headers=bearer(token)
    )
    assert bound.status_code == 200
    await agree_to_pi_notice(mock_client, token)
    early = await mock_client.post("/api/v1/me/face-sessions", headers=bearer(token))
    assert early.status_code == 409 and early.json()["code"] == "real_name_required"
    assert (await real_name(mock_client, token, ZHANG.name, ZHANG.id_number)).status_code == 200

    started = await mock_client.post("/api/v1/me/face-sessions", headers=bearer(token))
    assert started.status_code == 201, started.text
    face = started.json()
    assert face["status"] == "pending" and face["url"].startswith("http://testserver/mock/face/")
    path = f"/api/v1/me/face-sessions/{face['id']}"
    pending = await mock_client.get(path, headers=bearer(token))
    assert pending.json()["status"] == "pending"
    assert pending.json()["identity_level"] == "real_name"

    await finish_face_page(mock_client, face["url"], "pass")
    passed = await mock_client.get(path, headers=bearer(token))
    assert passed.status_code == 200
    assert passed.json()["status"] == "passed" and passed.json()["url"] is None
    assert passed.json()["identity_level"] == "face_verified"
    assert (await me(mock_client, token))["identity_level"] == "face_verified"
    # Final: asking again gives the same answer without the provider.
    assert (await mock_client.get(path, headers=bearer(token))).json() == passed.json()


async def test_a_failed_or_expired_face_check_changes_nothing(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    token = await real_named(mock_client, ZHANG)
    face = (await mock_client.post("/api/v1/me/face-sessions", headers=bearer(token))).json()
    await finish_face_page(mock_client, face["url"], "fail")
    failed = (
        await mock_client.get(f"/api/v1/me/face-sessions/{face['id']}", headers=bearer(token))
    ).json()
    assert failed["status"] == "failed" and failed["reason"] == "face_mismatch"
    assert failed["identity_level"] == "real_name"

    face = (await mock_client.post("/api/v1/me/face-sessions", headers=bearer(token))).json()
    clock.advance(timedelta(minutes=7))
    late = await mock_client.get(f"/api/v1/me/face-sessions/{face['id']}", headers=bearer(token))
    assert late.json()["status"] == "expired"
    # The page cannot complete it any more either.
    await mock_client.post(
        "/mock/face/page/complete",
        data={"biz_token": parse_qs(urlsplit(face["url"]).query)["biz_token"][0], "result": "pass"},
    )
    assert (await me(mock_client, token))["identity_level"] == "real_name"


async def test_a_check_finished_in_time_counts_when_asked_after_the_deadline(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    """Finished at 6:59, back at 7:01: the server asks the provider before it calls the
    session expired, and the provider says passed."""
    token = await real_named(mock_client, ZHANG)
    face = (await mock_client.post("/api/v1/me/face-sessions", headers=bearer(token))).json()
    assert face["token"] and face["sdk"] == "tencent_faceid"
    clock.advance(timedelta(minutes=6, seconds=59))
    await finish_face_page(mock_client, face["url"], "pass")
    clock.advance(timedelta(seconds=2))
    late = await mock_client.get(f"/api/v1/me/face-sessions/{face['id']}", headers=bearer(token))
    assert late.json()["status"] == "passed"
    assert (await me(mock_client, token))["identity_level"] == "face_verified"


async def test_face_sessions_are_private(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    token = await real_named(mock_client, ZHANG)
    face = (await mock_client.post("/api/v1/me/face-sessions", headers=bearer(token))).json()
    clock.advance(timedelta(minutes=1))
    other = await login_phone(mock_client, LI.phone)
    peek = await mock_client.get(f"/api/v1/me/face-sessions/{face['id']}", headers=bearer(other))
    assert peek.status_code == 404
    bad = await mock_client.get("/api/v1/me/face-sessions/not-an-id", headers=bearer(token))
    assert bad.status_code == 404


class _ProviderSays(FaceCheck):
    """A face provider whose result names someone else (e.g. a swapped token)."""

    def __init__(self, result: FaceOutcome) -> None:
        self.answer = result

    async def start(
        self, *, id_number: str, name: str, redirect_url: str, openid: str | None
    ) -> FaceStart:
        return FaceStart(uuid.uuid4().hex, "https://face.example/page", "tencent_faceid")

    async def result(
        self, token: str, *, reference: str, id_number: str, name: str, openid: str | None
    ) -> FaceOutcome:
        return self.answer


async def test_a_passed_face_check_for_another_identity_is_not_accepted(
    session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    now = clock.now()
    protected = keys.protect_id_number(ZHANG.id_number, field=verification.ID_NUMBER_FIELD)
    citizen = Citizen(
        name=ZHANG.name,
        id_number_encrypted=protected.encrypted,
        id_number_claim_index=protected.index,  # what real-name leaves
        id_number_masked=protected.masked,
        identity_level=IdentityLevel.real_name,
        pi_consent_version=PI_NOTICE_VERSION,  # real-name comes after the consent
        pi_consent_at=now,
        created_at=now,
    )
    set_citizen_phone(keys, citizen, ZHANG.phone)
    session.add(citizen)
    await session.flush()
    principal = Principal(
        kind=PrincipalKind.citizen, session_id=uuid.uuid4(), citizen_id=citizen.id
    )
    for result in (
        FaceOutcome(status="passed", id_number=LI.id_number, name=ZHANG.name),
        FaceOutcome(status="passed", id_number=ZHANG.id_number, name=LI.name),
    ):
        provider = _ProviderSays(result)
        started = await verification.start_face_session(
            session,
            keys,
            provider,
            principal,
            redirect_url="x",
            now=now,  # type: ignore[arg-type]
        )
        answer = await verification.face_session_result(
            session,
            keys,
            provider,
            principal,
            face_session_id=started.id,
            now=now,  # type: ignore[arg-type]
        )
        assert answer.status == "failed" and answer.reason == "identity_mismatch"
        assert citizen.identity_level is IdentityLevel.real_name
