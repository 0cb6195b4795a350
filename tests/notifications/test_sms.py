"""HttpSmsChannel against the mock SMS gateway, in process (httpx ASGI transport, no sockets)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from miniapp_mock.app import MockSettings, create_mock_app
from notifications.sms import (
    HttpSmsChannel,
    MemorySmsChannel,
    SmsChannel,
    SmsDeliveryError,
    SmsReceipt,
    sign_sms_request,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
PHONE = "13812345678"
SECRET = "secret-1"
SETTINGS = MockSettings(
    sms_access_key="ak-1",
    sms_secret=SECRET,
    wechat_appid="wx1",
    wechat_secret="s",
    idcheck_key="i",
    face_key="f",
)
TEXT = "【网签】您的验证码为 246810，5分钟内有效。"
PARAMS = {"code": "246810"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http(clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_mock_app(SETTINGS, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def channel(http: httpx.AsyncClient, *, secret: str = SECRET, skew: float = 0.0) -> HttpSmsChannel:
    return HttpSmsChannel(
        "http://testserver/", "ak-1", secret, http, clock=lambda: T0.timestamp() + skew
    )


async def inbox(http: httpx.AsyncClient) -> list[dict[str, object]]:
    return (await http.get("/sms/inbox", params={"phone": PHONE})).json()


async def test_send_is_delivered(http: httpx.AsyncClient) -> None:
    sms = channel(http)
    assert isinstance(sms, SmsChannel)
    receipt = await sms.send(PHONE, TEXT, template="login_code", params=PARAMS)
    assert isinstance(receipt, SmsReceipt)
    assert receipt.message_id and receipt.request_id

    [delivered] = await inbox(http)
    assert delivered["text"] == TEXT
    assert delivered["template"] == "login_code"
    assert delivered["params"] == PARAMS
    assert delivered["message_id"] == receipt.message_id


async def test_each_send_uses_a_fresh_nonce(http: httpx.AsyncClient) -> None:
    sms = channel(http)
    for i in range(3):
        await sms.send(PHONE, f"{TEXT}{i}", template="t", params={})
    assert len(await inbox(http)) == 3


async def test_retry_with_the_same_request_id_is_delivered_once(http: httpx.AsyncClient) -> None:
    sms = channel(http)
    first = await sms.send(PHONE, TEXT, template="t", params={}, request_id="req-1")
    second = await sms.send(PHONE, TEXT, template="t", params={}, request_id="req-1")
    assert first == second
    assert len(await inbox(http)) == 1


async def test_wrong_secret_maps_to_delivery_error(http: httpx.AsyncClient) -> None:
    with pytest.raises(SmsDeliveryError) as exc:
        await channel(http, secret="wrong").send(PHONE, TEXT, template="t", params={})
    assert exc.value.code == "SIGNATURE_INVALID"
    assert exc.value.status == 401
    assert not exc.value.retryable
    assert await inbox(http) == []


async def test_clock_skew_maps_to_delivery_error(http: httpx.AsyncClient) -> None:
    with pytest.raises(SmsDeliveryError) as exc:
        await channel(http, skew=-301).send(PHONE, TEXT, template="t", params={})
    assert exc.value.code == "TIMESTAMP_EXPIRED"


async def test_gateway_refusal_maps_code(http: httpx.AsyncClient) -> None:
    with pytest.raises(SmsDeliveryError) as exc:
        await channel(http).send("12345", TEXT, template="t", params={})
    assert (exc.value.code, exc.value.status) == ("INVALID_PHONE", 400)


async def test_gateway_outage_is_retryable(http: httpx.AsyncClient) -> None:
    await http.post("/sms/faults", json={"next_code": "SYSTEM_BUSY", "status": 503})
    with pytest.raises(SmsDeliveryError) as exc:
        await channel(http).send(PHONE, TEXT, template="t", params={})
    assert exc.value.code == "SYSTEM_BUSY" and exc.value.retryable


async def test_ok_status_with_error_code_is_an_error(http: httpx.AsyncClient) -> None:
    await http.post(
        "/sms/faults",
        json={"next_code": "BUSINESS_LIMIT_CONTROL", "status": 200, "message": "触发流控"},
    )
    with pytest.raises(SmsDeliveryError) as exc:
        await channel(http).send(PHONE, TEXT, template="t", params={})
    assert exc.value.code == "BUSINESS_LIMIT_CONTROL"
    assert exc.value.message == "触发流控"
    assert exc.value.retryable


def mock_transport_channel(
    handler: httpx.MockTransport,
) -> tuple[HttpSmsChannel, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=handler)
    return HttpSmsChannel(
        "https://sms.example/api", "ak", "sk", client, clock=lambda: 1_700_000_000
    ), client


async def test_request_shape_and_signature() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": "OK", "message_id": "m-1"})

    sms, client = mock_transport_channel(httpx.MockTransport(handler))
    async with client:
        receipt = await sms.send(PHONE, TEXT, template="login_code", params=PARAMS)

    [request] = seen
    assert str(request.url) == "https://sms.example/api/sms/send"
    body = json.loads(request.content)
    assert body == {
        "phone": PHONE,
        "template": "login_code",
        "params": PARAMS,
        "text": TEXT,
        "request_id": receipt.request_id,
    }
    headers = request.headers
    assert headers["x-sms-access-key"] == "ak"
    assert headers["x-sms-timestamp"] == "1700000000"
    assert len(headers["x-sms-nonce"]) >= 16
    expected = sign_sms_request("sk", "1700000000", headers["x-sms-nonce"], request.content)
    assert headers["x-sms-signature"] == expected
    assert receipt.message_id == "m-1"


@pytest.mark.parametrize(
    ("response", "code", "retryable"),
    [
        (httpx.Response(502, text="Bad Gateway"), "HTTP_502", True),
        (httpx.Response(200, text="not json"), "HTTP_200", False),
        (httpx.Response(200, json={"code": "OK"}), "HTTP_200", False),
        (httpx.Response(429, json={"code": "RATE_LIMITED"}), "RATE_LIMITED", True),
        (
            httpx.Response(400, json={"code": "TEMPLATE_INVALID", "message": "x"}),
            "TEMPLATE_INVALID",
            False,
        ),
    ],
)
async def test_unusual_answers(response: httpx.Response, code: str, retryable: bool) -> None:
    sms, client = mock_transport_channel(httpx.MockTransport(lambda _: response))
    async with client:
        with pytest.raises(SmsDeliveryError) as exc:
            await sms.send(PHONE, TEXT, template="t", params={})
    assert (exc.value.code, exc.value.retryable) == (code, retryable)


async def test_transport_failure_is_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sms, client = mock_transport_channel(httpx.MockTransport(handler))
    async with client:
        with pytest.raises(SmsDeliveryError) as exc:
            await sms.send(PHONE, TEXT, template="t", params={})
    assert exc.value.code == "TRANSPORT_ERROR" and exc.value.retryable


async def test_memory_channel_records() -> None:
    sms = MemorySmsChannel()
    assert isinstance(sms, SmsChannel)
    await sms.send(PHONE, "a", template="t", params={"k": "v"})
    await sms.send("13900000000", "b", template="t", params={})
    await sms.send(PHONE, "c", template="t", params={})
    last = sms.last_to(PHONE)
    assert last is not None and last.text == "c"
    assert len(sms.sent) == 3
    assert sms.last_to("13700000000") is None
