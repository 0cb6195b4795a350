"""Real-name (实名认证) with documents beyond the mainland resident card, over HTTP with the
mock outside services: residents of Hong Kong, Macao and Taiwan and foreigners (seed 004:
港澳台人士、外国人士) prove who they are with the document they hold."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.core.validators import ID_TYPE_LABELS, IdType
from api.demo import PEOPLE
from api.identity import verification
from api.identity.models import Citizen
from api.settings import Settings
from signing.gb_codes import resident_id_check_char
from signing.pii import id_number_index
from tests.api.identity.helpers import agree_to_pi_notice, bearer, login_phone, me

ZHANG = next(p for p in PEOPLE if p.name == "张三")
PROBLEM_JSON = "application/problem+json"


def gb11643(body17: str) -> str:
    return body17 + resident_id_check_char(body17)


HK_RESIDENT_PERMIT = gb11643("81000019850615123")  # 港澳台居民居住证, Hong Kong
TW_RESIDENT_PERMIT = gb11643("83000019720304567")  # 港澳台居民居住证, Taiwan
PR_CARD = gb11643("93184019800101001")  # 外国人永久居留身份证 (2023): Shanghai, USA

# (document, number as printed, holder's name as on the document)
HOLDERS = [
    (IdType.passport, "E12345678", "JOHN SMITH"),
    (IdType.passport, "561234567", "约翰史密斯"),
    (IdType.hk_macao_permit, "H12345678", "陈大文"),
    (IdType.hk_macao_permit, "M87654321", "何美玲"),
    (IdType.taiwan_permit, "01234567", "林志明"),
    (IdType.hmt_residence_permit, HK_RESIDENT_PERMIT, "陈小文"),
    (IdType.hmt_residence_permit, TW_RESIDENT_PERMIT, "王建民"),
    (IdType.foreign_permanent_residence, PR_CARD, "安娜"),
]


async def register_person(
    client: httpx.AsyncClient, settings: Settings, name: str, number: str
) -> None:
    """Put a person in the mock identity provider's registry (the stand-in for the
    database the real provider checks against)."""
    response = await client.post("/mock/faceid/people", json={"name": name, "id_number": number})
    assert response.status_code == 200, response.text


async def real_name(
    client: httpx.AsyncClient,
    token: str,
    name: str,
    id_number: str,
    id_type: IdType | str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"name": name, "id_number": id_number}
    if id_type is not None:
        body["id_type"] = str(id_type)
    await agree_to_pi_notice(client, token)
    return await client.post("/api/v1/me/real-name", json=body, headers=bearer(token))


def masked(number: str) -> str:
    """How the answers show a number: the first and last four kept, or for eight
    characters and fewer only the last two."""
    if len(number) <= 8:
        return "*" * (len(number) - 2) + number[-2:]
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"].endswith(code)
    return body


async def face_check(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """A face check passed on the mock provider's page; the outcome the API records."""
    started = await client.post("/api/v1/me/face-sessions", headers=bearer(token))
    assert started.status_code == 201, started.text
    face = started.json()
    biz_token = parse_qs(urlsplit(face["url"]).query)["biz_token"][0]
    completed = await client.post(
        "/mock/face/page/complete", data={"biz_token": biz_token, "result": "pass"}
    )
    assert completed.status_code == 303
    result = await client.get(f"/api/v1/me/face-sessions/{face['id']}", headers=bearer(token))
    assert result.status_code == 200, result.text
    return result.json()


async def citizen_row(session: AsyncSession, citizen_id: str) -> Citizen:
    citizen = await session.get(Citizen, uuid.UUID(citizen_id))
    assert citizen is not None
    return citizen


# ------------------------------------------------------------------ documents accepted


@pytest.mark.parametrize(("id_type", "number", "name"), HOLDERS)
async def test_a_holder_of_another_document_completes_real_name(
    mock_client: httpx.AsyncClient,
    mock_settings: Settings,
    id_type: IdType,
    number: str,
    name: str,
) -> None:
    await register_person(mock_client, mock_settings, name, number)
    token = await login_phone(mock_client, "13912340001")
    before = await me(mock_client, token)
    assert before["identity_level"] == "none" and before["id_type"] is None

    done = await real_name(mock_client, token, name, number, id_type)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["id_type"] == id_type.value
    assert body["identity_level"] == "real_name" and body["name"] == name
    assert body["id_number_masked"] == masked(number)
    assert number not in done.text

    profile = await me(mock_client, token)
    assert profile["id_type"] == id_type.value
    assert profile["identity_level"] == "real_name"
    assert profile["id_number_masked"] == masked(number)
    assert number not in (await mock_client.get("/api/v1/me", headers=bearer(token))).text

    # Saying it again, typed differently, is the same identity.
    again = await real_name(mock_client, token, name, f" {number.lower()} ", id_type)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert again.json()["id_type"] == id_type.value


async def test_the_stored_row_keeps_the_type_and_a_type_keyed_index(
    mock_client: httpx.AsyncClient,
    mock_settings: Settings,
    session: AsyncSession,
    keys: ServiceKeys,
) -> None:
    await register_person(mock_client, mock_settings, "陈大文", "H12345678")
    token = await login_phone(mock_client, "13912340001")
    # Typed with a lower-case letter and spaces: stored as printed on the card.
    done = await real_name(mock_client, token, "陈大文", "h1234 5678", IdType.hk_macao_permit)
    assert done.status_code == 200, done.text

    citizen = await citizen_row(session, done.json()["id"])
    assert citizen.id_type is IdType.hk_macao_permit
    # Claimed, not reserved: the number becomes the account's at a passed face check.
    assert citizen.id_number_index is None
    assert citizen.id_number_claim_index == keys.id_index("H12345678", IdType.hk_macao_permit)
    assert citizen.id_number_claim_index != keys.id_index("H12345678", IdType.resident_id)
    assert citizen.id_number_encrypted is not None
    assert "H12345678" not in citizen.id_number_encrypted
    number = keys.pii.decrypt(citizen.id_number_encrypted, field=verification.ID_NUMBER_FIELD)
    assert number == "H12345678"
    assert citizen.id_number_masked == "H123*5678"
    await session.commit()


async def test_a_passport_holder_reaches_face_verified(
    mock_client: httpx.AsyncClient, mock_settings: Settings
) -> None:
    # The face check matches the provider's answer against the index of the citizen's
    # own document type.
    await register_person(mock_client, mock_settings, "JOHN SMITH", "E12345678")
    token = await login_phone(mock_client, "13912340001")
    done = await real_name(mock_client, token, "JOHN SMITH", "E12345678", IdType.passport)
    assert done.status_code == 200, done.text

    started = await mock_client.post("/api/v1/me/face-sessions", headers=bearer(token))
    assert started.status_code == 201, started.text
    face = started.json()
    parts = urlsplit(face["url"])
    biz_token = parse_qs(parts.query)["biz_token"][0]
    assert (await mock_client.get(parts.path, params={"biz_token": biz_token})).status_code == 200
    completed = await mock_client.post(
        "/mock/face/page/complete", data={"biz_token": biz_token, "result": "pass"}
    )
    assert completed.status_code == 303

    result = await mock_client.get(f"/api/v1/me/face-sessions/{face['id']}", headers=bearer(token))
    assert result.status_code == 200, result.text
    assert result.json()["status"] == "passed"
    profile = await me(mock_client, token)
    assert profile["identity_level"] == "face_verified"
    assert profile["id_type"] == "passport"


# ------------------------------------------------------------------ resident ID unchanged


async def test_a_resident_id_real_name_works_unchanged(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys
) -> None:
    token = await login_phone(mock_client, ZHANG.phone)
    # The body of before: no id_type at all.
    done = await real_name(mock_client, token, ZHANG.name, ZHANG.id_number)
    assert done.status_code == 200, done.text
    assert done.json()["id_type"] == "resident_id"
    assert done.json()["id_number_masked"] == masked(ZHANG.id_number)
    profile = await me(mock_client, token)
    assert profile["id_type"] == "resident_id" and profile["identity_level"] == "real_name"
    # Naming the type says the same thing.
    explicit = await real_name(mock_client, token, ZHANG.name, ZHANG.id_number, "resident_id")
    assert explicit.status_code == 200 and explicit.json()["id"] == profile["id"]

    # The index is the one resident IDs always had, so older rows still match.
    citizen = await citizen_row(session, profile["id"])
    assert citizen.id_type is IdType.resident_id
    assert citizen.id_number_claim_index == id_number_index(keys.pii_index, ZHANG.id_number)
    await session.commit()


async def test_a_resident_id_cannot_be_passed_off_as_another_document(
    mock_client: httpx.AsyncClient,
) -> None:
    token = await login_phone(mock_client, ZHANG.phone)
    for id_type in (IdType.hmt_residence_permit, IdType.foreign_permanent_residence):
        refused = await real_name(mock_client, token, ZHANG.name, ZHANG.id_number, id_type)
        body = assert_problem(refused, 422, "id_number_format")
        assert ID_TYPE_LABELS[id_type] in body["detail"]
    assert (await me(mock_client, token))["identity_level"] == "none"


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("id_type", "number", "code", "says"),
    [
        (IdType.passport, "E123", "id_number_format", "护照号码应为 5 到 17 位字母和数字"),
        (IdType.passport, "E1234-5678", "id_number_format", "护照号码"),
        (IdType.hk_macao_permit, "E12345678", "id_number_format", "港澳居民来往内地通行证号码"),
        (IdType.hk_macao_permit, "H1234567", "id_number_format", "H 或 M"),
        (IdType.taiwan_permit, "T1234567", "id_number_format", "台湾居民来往大陆通行证号码"),
        (
            IdType.hmt_residence_permit,
            HK_RESIDENT_PERMIT[:-1] + ("0" if HK_RESIDENT_PERMIT[-1] != "0" else "1"),
            "id_number_check_char",
            "港澳台居民居住证号码校验位不正确",
        ),
        (
            IdType.hmt_residence_permit,
            gb11643("81000019850230123"),  # 30 February
            "id_number_birth_date",
            "港澳台居民居住证号码中的出生日期不存在",
        ),
        (
            IdType.hmt_residence_permit,
            gb11643("84000019850615123"),
            "id_number_format",
            "810000、820000 或 830000",
        ),
        (
            IdType.foreign_permanent_residence,
            PR_CARD[:-1] + ("0" if PR_CARD[-1] != "0" else "1"),
            "id_number_check_char",
            "外国人永久居留身份证号码校验位不正确",
        ),
        (
            IdType.foreign_permanent_residence,
            gb11643("93184020301231001"),  # born after today
            "id_number_birth_date",
            "外国人永久居留身份证号码中的出生日期不存在",
        ),
        (IdType.resident_id, HK_RESIDENT_PERMIT, "id_number_format", "居民身份证号码"),
        (IdType.resident_id, PR_CARD, "id_number_format", "居民身份证号码"),
    ],
)
async def test_a_bad_number_for_the_chosen_document_is_a_clear_problem(
    mock_client: httpx.AsyncClient,
    mock_settings: Settings,
    id_type: IdType,
    number: str,
    code: str,
    says: str,
) -> None:
    # Even a person the provider knows under that number is refused before asking it.
    await register_person(mock_client, mock_settings, "陈大文", number)
    token = await login_phone(mock_client, "13912340001")
    response = await real_name(mock_client, token, "陈大文", number, id_type)
    body = assert_problem(response, 422, code)
    assert says in body["detail"]
    assert body["detail"].startswith(ID_TYPE_LABELS[id_type])
    assert body["id_type"] == id_type.value
    assert number not in response.text  # a refusal does not echo the number
    profile = await me(mock_client, token)
    assert profile["identity_level"] == "none" and profile["id_type"] is None


async def test_an_unknown_document_type_is_refused(mock_client: httpx.AsyncClient) -> None:
    token = await login_phone(mock_client, ZHANG.phone)
    for id_type in ("driving_licence", "PASSPORT", ""):
        response = await real_name(mock_client, token, ZHANG.name, ZHANG.id_number, id_type)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert response.json()["code"] == "invalid_body"
    assert (await me(mock_client, token))["identity_level"] == "none"


async def test_the_provider_still_decides_for_other_documents(
    mock_client: httpx.AsyncClient, mock_settings: Settings
) -> None:
    token = await login_phone(mock_client, "13912340001")
    # A well-formed passport number the provider does not know.
    unknown = await real_name(mock_client, token, "JOHN SMITH", "E99999999", IdType.passport)
    assert_problem(unknown, 422, "real_name_mismatch")
    await register_person(mock_client, mock_settings, "JOHN SMITH", "E99999999")
    wrong_name = await real_name(mock_client, token, "JANE SMITH", "E99999999", IdType.passport)
    assert_problem(wrong_name, 422, "real_name_mismatch")
    assert (await me(mock_client, token))["identity_level"] == "none"
    right = await real_name(mock_client, token, "JOHN SMITH", "E99999999", IdType.passport)
    assert right.status_code == 200, right.text


# ------------------------------------------------------------------ one identity, one account


async def test_the_same_characters_under_two_documents_do_not_collide(
    mock_client: httpx.AsyncClient,
    mock_settings: Settings,
    clock: MovableClock,
    session: AsyncSession,
) -> None:
    # A Hong Kong resident's permit and someone's passport that happen to read alike. (The
    # mock provider's registry is keyed by the characters alone, so both holders carry
    # the same name here.)
    await register_person(mock_client, mock_settings, "陈大文", "H12345678")
    permit_holder = await login_phone(mock_client, "13912340001")
    clock.advance(timedelta(minutes=1))
    passport_holder = await login_phone(mock_client, "13912340002")

    permit = await real_name(
        mock_client, permit_holder, "陈大文", "H12345678", IdType.hk_macao_permit
    )
    assert permit.status_code == 200, permit.text
    passport = await real_name(mock_client, passport_holder, "陈大文", "H12345678", "passport")
    assert passport.status_code == 200, passport.text
    assert passport.json()["id"] != permit.json()["id"]
    assert (await me(mock_client, permit_holder))["id_type"] == "hk_macao_permit"
    assert (await me(mock_client, passport_holder))["id_type"] == "passport"

    # The same number under the same document is one identity: a third account is refused,
    # however the number is typed.
    clock.advance(timedelta(minutes=1))
    third = await login_phone(mock_client, "13912340003")
    # (Claims reserve nothing, review finding 3: the face check settles whose it is.)
    for holder in (permit_holder, passport_holder):
        assert (await face_check(mock_client, holder))["status"] == "passed"
    for phone, typed, id_type in (
        ("13912340003", "h1234 5678", IdType.hk_macao_permit),
        ("13912340004", "H12345678", IdType.passport),
    ):
        clock.advance(timedelta(minutes=1))
        third = await login_phone(mock_client, phone)
        claimed = await real_name(mock_client, third, "陈大文", typed, id_type)
        assert claimed.status_code == 200, claimed.text
        taken = await face_check(mock_client, third)
        assert (taken["status"], taken["reason"]) == ("failed", "id_number_taken")
        assert (await me(mock_client, third))["identity_level"] == "real_name"

    rows = list(await session.scalars(select(Citizen).where(Citizen.id_number_index.is_not(None))))
    assert {row.id_type for row in rows} == {IdType.hk_macao_permit, IdType.passport}
    assert len({row.id_number_index for row in rows}) == 2
    await session.commit()


async def test_the_same_digits_as_a_taiwan_permit_and_a_passport_do_not_collide(
    mock_client: httpx.AsyncClient, mock_settings: Settings, clock: MovableClock
) -> None:
    await register_person(mock_client, mock_settings, "林志明", "01234567")
    first = await login_phone(mock_client, "13912340001")
    clock.advance(timedelta(minutes=1))
    second = await login_phone(mock_client, "13912340002")
    as_permit = await real_name(mock_client, first, "林志明", "01234567", IdType.taiwan_permit)
    as_passport = await real_name(mock_client, second, "林志明", "01234567", IdType.passport)
    assert as_permit.status_code == 200 and as_passport.status_code == 200
    clock.advance(timedelta(minutes=1))
    assert (await face_check(mock_client, first))["status"] == "passed"
    assert (await face_check(mock_client, second))["status"] == "passed"
    third = await login_phone(mock_client, "13912340003")
    again = await real_name(mock_client, third, "林志明", "01234567", IdType.taiwan_permit)
    assert again.status_code == 200  # a claim reserves nothing (review finding 3) ...
    taken = await face_check(mock_client, third)  # ... the face check keeps one account
    assert (taken["status"], taken["reason"]) == ("failed", "id_number_taken")


async def test_a_resident_id_is_still_one_identity_one_account(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    first = await login_phone(mock_client, ZHANG.phone)
    assert (await real_name(mock_client, first, ZHANG.name, ZHANG.id_number)).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert (await face_check(mock_client, first))["status"] == "passed"
    for phone, id_type in (("13912340002", None), ("13912340003", IdType.resident_id)):
        clock.advance(timedelta(minutes=1))
        second = await login_phone(mock_client, phone)
        claimed = await real_name(mock_client, second, ZHANG.name, ZHANG.id_number, id_type)
        assert claimed.status_code == 200, claimed.text
        taken = await face_check(mock_client, second)
        assert (taken["status"], taken["reason"]) == ("failed", "id_number_taken")


async def test_an_account_cannot_switch_to_another_document(
    mock_client: httpx.AsyncClient, mock_settings: Settings
) -> None:
    await register_person(mock_client, mock_settings, "陈大文", "H12345678")
    token = await login_phone(mock_client, "13912340001")
    done = await real_name(mock_client, token, "陈大文", "H12345678", IdType.hk_macao_permit)
    assert done.status_code == 200, done.text
    # The same characters named as another document are another identity.
    switched = await real_name(mock_client, token, "陈大文", "H12345678", IdType.passport)
    assert_problem(switched, 409, "real_name_already_set")
    assert (await me(mock_client, token))["id_type"] == "hk_macao_permit"
