"""The mock Tencent Cloud FaceID (real-name check and H5 face check), driven through our
own clients over its TC3-signed protocol, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar

from api.core.errors import DomainError
from api.identity.face_providers import (
    FACEID_VERSION,
    TencentCloud,
    TencentFaceId,
    TencentIdCheck,
)
from miniapp_mock.app import MockSettings
from tests.miniapp_mock.helpers import ZHANG_ID, FakeClock

REDIRECT = "http://127.0.0.1:8000/api/v1/auth/face-return"


@pytest.fixture
async def http(mock_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mock_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        yield client


def faceid(http: httpx.AsyncClient, settings: MockSettings, clock: FakeClock, *,
           key: str | None = None) -> TencentCloud:
    return TencentCloud(
        "http://mock/faceid", settings.faceid_secret_id, key or settings.faceid_secret_key,
        "faceid", FACEID_VERSION, "ap-guangzhou", http, lambda: clock().timestamp(),
    )


async def test_idcheck_results(http: httpx.AsyncClient, settings: MockSettings,
                               clock: FakeClock) -> None:
    check = TencentIdCheck(faceid(http, settings, clock))
    assert await check.verify("张三", ZHANG_ID) == "match"
    assert await check.verify("张三", ZHANG_ID.lower()) == "match"
    assert await check.verify("张四", ZHANG_ID) == "mismatch"
    assert await check.verify("张三", "440101199001011234") == "not_found"


async def test_provider_errors_are_retried_and_never_a_match(
    http: httpx.AsyncClient, settings: MockSettings, clock: FakeClock, mock_app: Litestar
) -> None:
    check = TencentIdCheck(faceid(http, settings, clock))
    await http.post("/faceid/faults", json={"result": "-4", "count": 2})
    assert await check.verify("张三", ZHANG_ID) == "match"  # the third try answers
    await http.post("/faceid/faults", json={"result": "-6", "count": 3})
    with pytest.raises(DomainError) as down:
        await check.verify("张三", ZHANG_ID)
    assert down.value.code == "idcheck_unavailable"
    assert mock_app.state.mock_services.faceid.calls.count("IdCardVerification") == 6


async def test_a_wrong_key_is_refused(http: httpx.AsyncClient, settings: MockSettings,
                                      clock: FakeClock) -> None:
    api = faceid(http, settings, clock, key="wrong")
    answer = await api.call("IdCardVerification", {"IdCard": ZHANG_ID, "Name": "张三"})
    assert answer["Error"]["Code"] == "AuthFailure.SignatureFailure"
    with pytest.raises(DomainError):
        await TencentIdCheck(api).verify("张三", ZHANG_ID)
    unsigned = await http.post("/faceid", json={"IdCard": ZHANG_ID, "Name": "张三"},
                               headers={"X-TC-Action": "IdCardVerification"})
    assert unsigned.json()["Response"]["Error"]["Code"] == "AuthFailure.InvalidAuthorization"


async def test_people_can_be_added(http: httpx.AsyncClient, settings: MockSettings,
                                   clock: FakeClock) -> None:
    new = "440101199001011234"
    assert (await http.post("/faceid/people", json={"name": "王五", "id_number": new})).is_success
    assert await TencentIdCheck(faceid(http, settings, clock)).verify("王五", new) == "match"


async def press(http: httpx.AsyncClient, url: str, result: str) -> httpx.Response:
    token = parse_qs(urlsplit(url).query)["biz_token"][0]
    page = await http.get("/face/page", params={"biz_token": token})
    assert page.status_code == 200
    return await http.post("/face/page/complete", data={"biz_token": token, "result": result})


def face(http: httpx.AsyncClient, settings: MockSettings, clock: FakeClock) -> TencentFaceId:
    return TencentFaceId(faceid(http, settings, clock), settings.face_rule_id)


async def outcome(check: TencentFaceId, token: str, name: str = "张三") -> object:
    return await check.result(token, reference="", id_number=ZHANG_ID, name=name, openid=None)


async def test_face_pass_and_fail(http: httpx.AsyncClient, settings: MockSettings,
                                  clock: FakeClock) -> None:
    check = face(http, settings, clock)
    started = await check.start(id_number=ZHANG_ID, name="张三", redirect_url=REDIRECT,
                                openid=None)
    assert started.sdk == "tencent_faceid" and started.url.startswith("http://127.0.0.1:8000/mock/face/page?")
    assert (await outcome(check, started.token)).status == "pending"  # type: ignore[attr-defined]
    done = await press(http, started.url, "pass")
    assert done.status_code == 303
    assert done.headers["location"] == f"{REDIRECT}?token={started.token}"
    passed = await outcome(check, started.token)
    assert passed.status == "passed" and passed.id_number == ZHANG_ID  # type: ignore[attr-defined]
    assert passed.similarity == 93.5  # type: ignore[attr-defined]  # Sim, a string, as a number

    again = await check.start(id_number=ZHANG_ID, name="张三", redirect_url=REDIRECT, openid=None)
    await press(http, again.url, "fail")
    await press(http, again.url, "pass")  # the first answer wins
    failed = await outcome(check, again.token)
    assert failed.status == "failed" and failed.code == "2004"  # type: ignore[attr-defined]


async def test_an_unregistered_person_cannot_pass(http: httpx.AsyncClient, settings: MockSettings,
                                                  clock: FakeClock) -> None:
    check = face(http, settings, clock)
    started = await check.start(id_number=ZHANG_ID, name="张四", redirect_url=REDIRECT,
                                openid=None)
    token = parse_qs(urlsplit(started.url).query)["biz_token"][0]
    page = await http.get("/face/page", params={"biz_token": token})
    assert "未在模拟身份库中登记" in page.text
    await press(http, started.url, "pass")
    assert (await outcome(check, started.token, "张四")).status == "failed"  # type: ignore[attr-defined]


async def test_an_unfinished_token_expires(http: httpx.AsyncClient, settings: MockSettings,
                                           clock: FakeClock) -> None:
    check = face(http, settings, clock)
    started = await check.start(id_number=ZHANG_ID, name="张三", redirect_url=REDIRECT,
                                openid=None)
    clock.advance(minutes=31)
    assert (await outcome(check, started.token)).status == "expired"  # type: ignore[attr-defined]
    await press(http, started.url, "pass")  # too late: nothing is recorded
    assert (await outcome(check, started.token)).status == "expired"  # type: ignore[attr-defined]


async def test_redirect_must_go_back_to_our_site(http: httpx.AsyncClient, settings: MockSettings,
                                                 clock: FakeClock) -> None:
    api = faceid(http, settings, clock)
    for url in ("https://evil.example/steal", "javascript:alert(1)", "/relative"):
        answer = await api.call("DetectAuth", {"RuleId": "1", "IdCard": ZHANG_ID, "Name": "张三",
                                               "RedirectUrl": url})
        assert answer["Error"]["Code"] == "InvalidParameterValue", url
    wrong_rule = await api.call("DetectAuth", {"RuleId": "9", "IdCard": ZHANG_ID, "Name": "张三"})
    assert wrong_rule["Error"]["Code"] == "InvalidParameterValue.RuleIdNotExist"
    unknown = await api.call("GetDetectInfoEnhanced", {"BizToken": "nope", "RuleId": "1"})
    assert unknown["Error"]["Code"] == "InvalidParameterValue.BizTokenIllegal"
    assert (await http.get("/face/page", params={"biz_token": "nope"})).status_code == 404
