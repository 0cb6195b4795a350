"""The mock SMS providers with our templates approved, and channels that speak to them in
process (no sockets)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx

from api.outside import mock_sms_specs, mock_sms_templates
from miniapp_mock.app import MockSettings
from notifications.aliyun_sms import AliyunSmsChannel
from notifications.tencent_sms import TencentSmsChannel

KEY_ID = "LTAI-test-key-id"
SECRET = "test-sms-secret-not-real"
SIGN = "网签测试"
APP_ID = "1400123456"


def mock_settings(**overrides: object) -> MockSettings:
    return MockSettings(
        sms_access_key=KEY_ID,
        sms_secret=SECRET,
        sms_sign_name=SIGN,
        sms_app_id=APP_ID,
        sms_templates=mock_sms_specs(),
        wechat_appid="wx-test",
        wechat_secret="wx-test-secret",
        faceid_secret_id="AKID-test",
        faceid_secret_key="faceid-test-secret",
        **overrides,  # type: ignore[arg-type]
    )


def aliyun(http: httpx.AsyncClient, clock: Callable[[], datetime], *,
           secret: str = SECRET, skew: float = 0.0) -> AliyunSmsChannel:
    return AliyunSmsChannel(
        "http://mock/sms/aliyun", KEY_ID, secret, SIGN, mock_sms_templates(), http,
        clock=lambda: clock().timestamp() + skew,
    )


def tencent(http: httpx.AsyncClient, clock: Callable[[], datetime], *,
            secret: str = SECRET, skew: float = 0.0) -> TencentSmsChannel:
    return TencentSmsChannel(
        "http://mock/sms/tencent", KEY_ID, secret, APP_ID, SIGN, mock_sms_templates(), http,
        clock=lambda: clock().timestamp() + skew,
    )


class LosesAnswers(httpx.AsyncBaseTransport):
    """Delivers each request, then loses its answer: what a timeout looks like when the
    provider did get the message."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, lose: int) -> None:
        self.inner = inner
        self.lose = lose

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.lose > 0 and request.headers.get("x-acs-action", request.headers.get(
                "x-tc-action")) == "SendSms":
            self.lose -= 1
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response
