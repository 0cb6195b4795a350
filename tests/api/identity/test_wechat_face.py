"""WeChat's face verification for government mini programs (WANGQIAN_FACE_PROVIDER=wechat):
the API answers the verify_id the page hands to wx.requestFacialVerify, and asks WeChat's
queryverifyinfo (bound to the identity by cert_hash) for the result."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from api.app import create_app
from api.core.clock import MovableClock
from api.db.engine import Database
from api.settings import Settings
from tests.api.contracts.helpers import ZHANG
from tests.api.identity.helpers import (
    agree_to_pi_notice,
    bearer,
    login_phone,
    me,
    send_code,
    wechat_code,
)


@pytest.fixture
async def client(
    mock_settings: Settings, clock: MovableClock, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    settings = msgspec.structs.replace(mock_settings, face_provider="wechat")
    loopback = httpx.ASGITransport(app=None)  # type: ignore[arg-type]
    app = create_app(settings, clock=clock, database=database, http_transport=loopback)
    loopback.app = app
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


async def _real_named_wechat_user(client: httpx.AsyncClient) -> str:
    login = await client.post("/api/v1/auth/wechat", json={"code": await wechat_code(client, "zs")})
    token = login.json()["token"]
    code = await send_code(client, ZHANG.phone)
    bound = await client.post("/api/v1/me/phone", json={"phone": ZHANG.phone, "code": code},
                              headers=bearer(token))
    assert bound.status_code == 200, bound.text
    await agree_to_pi_notice(client, token)
    named = await client.post("/api/v1/me/real-name",
                              json={"name": ZHANG.name, "id_number": ZHANG.id_number},
                              headers=bearer(token))
    assert named.status_code == 200, named.text
    return token


@pytest.mark.parametrize(("tapped", "status", "level"),
                         [("pass", "passed", "face_verified"), ("cancel", "failed", "real_name")])
async def test_the_mini_program_hands_the_verify_id_to_wechat(
    client: httpx.AsyncClient, tapped: str, status: str, level: str
) -> None:
    token = await _real_named_wechat_user(client)
    started = await client.post("/api/v1/me/face-sessions", headers=bearer(token))
    assert started.status_code == 201, started.text
    face = started.json()
    assert face["sdk"] == "wechat_facial_verify" and face["token"] and face["url"] is None
    path = f"/api/v1/me/face-sessions/{face['id']}"
    assert (await client.get(path, headers=bearer(token))).json()["status"] == "pending"
    verified = await client.post("/mock/wechat/face/verify",
                                 json={"verify_id": face["token"], "result": tapped})
    assert verified.json()["errMsg"] == "requestFacialVerify:ok"
    result = (await client.get(path, headers=bearer(token))).json()
    assert (result["status"], result["identity_level"]) == (status, level)
    assert (await me(client, token))["identity_level"] == level


async def test_without_a_wechat_login_there_is_no_wechat_face_check(
    client: httpx.AsyncClient,
) -> None:
    token = await login_phone(client, ZHANG.phone)
    await agree_to_pi_notice(client, token)
    named = await client.post("/api/v1/me/real-name",
                              json={"name": ZHANG.name, "id_number": ZHANG.id_number},
                              headers=bearer(token))
    assert named.status_code == 200
    refused = await client.post("/api/v1/me/face-sessions", headers=bearer(token))
    assert refused.status_code == 409 and refused.json()["code"] == "wechat_login_required"
