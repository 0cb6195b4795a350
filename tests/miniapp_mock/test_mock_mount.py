"""The mock app works when mounted under /mock in another Litestar app, as the API does."""

from __future__ import annotations

import re
import time
from urllib.parse import urljoin

import msgspec
from litestar import Litestar
from litestar.handlers import asgi
from litestar.testing import TestClient
from litestar.types import Receive, Scope, Send

from miniapp_mock.app import MockServices, MockSettings, create_mock_app
from notifications import tc3


def test_mounted_under_mock(settings: MockSettings) -> None:
    mock = create_mock_app(settings)

    @asgi("/mock", is_mount=True, copy_scope=True)
    async def mount(scope: Scope, receive: Receive, send: Send) -> None:
        await mock(scope, receive, send)

    with TestClient(Litestar([mount])) as client:
        code = client.post("/mock/wechat/login", json={"user": "alice"}).json()["code"]
        answer = client.get(
            "/mock/wechat/sns/jscode2session",
            params={
                "appid": settings.wechat_appid,
                "secret": settings.wechat_secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        ).json()
        assert "openid" in answer
        assert client.get("/mock/sms/inbox", params={"phone": "13800000000"}).json() == []

        body = msgspec.json.encode({"RuleId": "1", "IdCard": "44010119900101123X",
                                    "Name": "张三", "RedirectUrl": "http://127.0.0.1:8000/miniapp/"})
        headers = tc3.signed_headers(
            settings.faceid_secret_id, settings.faceid_secret_key, service="faceid",
            host="testserver.local", action="DetectAuth", version="2018-03-01",
            region="ap-guangzhou", timestamp=int(time.time()), payload=body,
        )
        started = client.post("/mock/faceid", content=body, headers=headers).json()["Response"]
        started = {"url": started["Url"], "biz_token": started["BizToken"]}
        page_path = started["url"].removeprefix("http://127.0.0.1:8000")
        assert page_path.startswith("/mock/face/page?")
        page = client.get(page_path)
        assert page.status_code == 200
        # The page's form posts to a relative URL, which resolves under the mount.
        action = re.search(r'action="([^"]+)"', page.text)
        assert action is not None
        assert urljoin(page_path, action.group(1)) == "/mock/face/page/complete"
        done = client.post(
            "/mock/face/page/complete",
            data={"biz_token": started["biz_token"], "result": "pass"},
            follow_redirects=False,
        )
        assert done.status_code == 303

    assert isinstance(mock.state.mock_services, MockServices)
