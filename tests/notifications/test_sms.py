"""The Alibaba Cloud and Tencent Cloud SMS channels against the mock providers, which
speak both wire protocols and verify their signatures (in process, no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar

from miniapp_mock.app import create_mock_app
from notifications import aliyun_sms, tencent_sms
from notifications.sms import MemorySmsChannel, SmsChannel, SmsDeliveryError, parse_template_codes
from notifications.templates import render, sms_variables
from tests.notifications.sms_rig import SIGN, LosesAnswers, aliyun, mock_settings, tencent

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PHONE = "13812345678"
SIGNED = render(
    "contract_signed",
    {"estate": "明湖花园", "building": "1栋", "room": "301", "buyer_name": "张三",
     "contract_number": "YS2026000123", "password": "12345678"},
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mock(clock: Clock) -> Litestar:
    return create_mock_app(mock_settings(), clock=clock)


@pytest.fixture
async def http(mock: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mock)) as client:
        yield client


CHANNELS = {"aliyun": aliyun, "tencent": tencent}


def inbox(mock: Litestar, phone: str = PHONE) -> list[Any]:
    return list(mock.state.mock_services.sms.inbox.get(phone, []))


async def send(channel: SmsChannel, phone: str = PHONE, **kw: Any) -> Any:
    return await channel.send(phone, SIGNED.text, template="contract_signed",
                              params=kw.pop("params", SIGNED.params), **kw)


@pytest.mark.parametrize("provider", sorted(CHANNELS))
async def test_a_templated_message_is_delivered_with_the_signature(
    provider: str, http: httpx.AsyncClient, mock: Litestar, clock: Clock
) -> None:
    channel = CHANNELS[provider](http, clock)
    assert isinstance(channel, SmsChannel)
    receipt = await send(channel, request_id="msg-1")
    assert receipt.message_id and receipt.request_id == "msg-1"
    [delivered] = inbox(mock)
    assert delivered.text == f"【{SIGN}】{SIGNED.text}"
    assert delivered.params == SIGNED.params and delivered.out_id == "msg-1"
    assert delivered.template == "contract_signed" and delivered.provider == provider


@pytest.mark.parametrize(
    ("provider", "code"),
    [("aliyun", "SignatureDoesNotMatch"), ("tencent", "AuthFailure.SignatureFailure")],
)
async def test_a_wrong_secret_is_refused_and_nothing_is_sent(
    provider: str, code: str, http: httpx.AsyncClient, mock: Litestar, clock: Clock
) -> None:
    with pytest.raises(SmsDeliveryError) as refused:
        await send(CHANNELS[provider](http, clock, secret="wrong"))
    assert refused.value.code == code and not refused.value.retryable
    assert not refused.value.unknown and inbox(mock) == []


@pytest.mark.parametrize(
    ("provider", "code"),
    [("aliyun", "InvalidTimeStamp.Expired"), ("tencent", "AuthFailure.SignatureExpire")],
)
async def test_a_stale_signature_is_refused(
    provider: str, code: str, http: httpx.AsyncClient, clock: Clock
) -> None:
    with pytest.raises(SmsDeliveryError) as refused:
        await send(CHANNELS[provider](http, clock, skew=-3600))
    assert refused.value.code == code


async def test_a_replayed_alibaba_request_is_refused(
    http: httpx.AsyncClient, mock: Litestar, clock: Clock
) -> None:
    seen: list[httpx.Request] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request)

    http.event_hooks["request"].append(hook)
    await send(aliyun(http, clock))
    replay = await http.post(str(seen[0].url), headers=dict(seen[0].headers))
    assert replay.json()["Code"] == "SignatureNonceUsed"
    assert len(inbox(mock)) == 1


@pytest.mark.parametrize("provider", sorted(CHANNELS))
async def test_a_template_with_no_provider_code_fails_clearly(
    provider: str, http: httpx.AsyncClient, clock: Clock
) -> None:
    channel = CHANNELS[provider](http, clock)
    channel._templates.pop("contract_signed")  # type: ignore[attr-defined]
    with pytest.raises(SmsDeliveryError) as refused:
        await send(channel)
    assert refused.value.code == "TEMPLATE_NOT_MAPPED" and not refused.value.retryable
    assert "WANGQIAN_SMS_TEMPLATE_CODES" in refused.value.message


@pytest.mark.parametrize(
    ("provider", "value", "code"),
    [
        ("aliyun", "张" * 36, "isv.PARAM_LENGTH_LIMIT"),
        ("aliyun", "http://x.cn/a", "isv.PARAM_NOT_SUPPORT_URL"),
        ("aliyun", "【网签】", "isv.INVALID_PARAMETERS"),
        ("tencent", "张" * 21, "InvalidParameterValue.TemplateParameterLengthLimit"),
        ("tencent", "www.example.com", "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter"),
    ],
)
async def test_variables_the_providers_refuse(
    provider: str, value: str, code: str, http: httpx.AsyncClient, mock: Litestar, clock: Clock
) -> None:
    with pytest.raises(SmsDeliveryError) as refused:
        await send(CHANNELS[provider](http, clock), params={**SIGNED.params, "estate": value})
    assert refused.value.code == code and not refused.value.retryable
    assert inbox(mock) == []


@pytest.mark.parametrize(
    ("provider", "code", "retryable"),
    [
        ("aliyun", "isv.BUSINESS_LIMIT_CONTROL", True),
        ("aliyun", "isv.DAY_LIMIT_CONTROL", True),
        ("aliyun", "isp.SYSTEM_ERROR", True),
        ("aliyun", "isv.AMOUNT_NOT_ENOUGH", True),
        ("aliyun", "isv.MOBILE_NUMBER_ILLEGAL", False),
        ("aliyun", "isv.SMS_TEMPLATE_ILLEGAL", False),
        ("aliyun", "isv.BLACK_KEY_CONTROL_LIMIT", False),
        ("aliyun", "isv.ACCOUNT_ABNORMAL", False),
        ("tencent", "LimitExceeded.PhoneNumberDailyLimit", True),
        ("tencent", "LimitExceeded.PhoneNumberThirtySecondLimit", True),
        ("tencent", "FailedOperation.InsufficientBalanceInSmsPackage", True),
        ("tencent", "FailedOperation.PhoneNumberInBlacklist", False),
        ("tencent", "FailedOperation.ContainSensitiveWord", False),
        ("tencent", "InternalError.OtherError", True),
        ("tencent", "FailedOperation.TemplateIncorrectOrUnapproved", False),
    ],
)
async def test_provider_codes_map_to_retry_or_not(
    provider: str, code: str, retryable: bool, http: httpx.AsyncClient, mock: Litestar,
    clock: Clock,
) -> None:
    assert (await http.post("http://mock/sms/faults", json={"next_code": code})).status_code == 200
    with pytest.raises(SmsDeliveryError) as refused:
        await send(CHANNELS[provider](http, clock))
    assert (refused.value.code, refused.value.retryable) == (code, retryable)
    assert not refused.value.unknown and inbox(mock) == []


async def test_an_alibaba_refusal_comes_in_a_200_answer(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    await http.post("http://mock/sms/faults",
                    json={"next_code": "isv.BUSINESS_LIMIT_CONTROL", "message": "触发天级流控"})
    with pytest.raises(SmsDeliveryError) as refused:
        await send(aliyun(http, clock))
    assert refused.value.status == 200 and refused.value.message == "触发天级流控"


@pytest.mark.parametrize("provider", sorted(CHANNELS))
async def test_neither_provider_de_duplicates(
    provider: str, http: httpx.AsyncClient, mock: Litestar, clock: Clock
) -> None:
    channel = CHANNELS[provider](http, clock)
    await send(channel, request_id="same")
    await send(channel, request_id="same")
    assert len(inbox(mock)) == 2  # which is why the outbox looks before it resends


@pytest.mark.parametrize("provider", sorted(CHANNELS))
async def test_a_lost_answer_is_unknown_and_the_provider_knows_the_message(
    provider: str, mock: Litestar, clock: Clock
) -> None:
    transport = LosesAnswers(httpx.ASGITransport(app=mock), lose=1)
    async with httpx.AsyncClient(transport=transport) as http:
        channel = CHANNELS[provider](http, clock)
        with pytest.raises(SmsDeliveryError) as lost:
            await send(channel, request_id="msg-7")
        assert lost.value.unknown and lost.value.retryable
        assert len(inbox(mock)) == 1  # it did go out
        early = await channel.status(PHONE, request_id="msg-7", provider_id="", sent_at=T0)
        clock.now += timedelta(seconds=10)
        later = await channel.status(PHONE, request_id="msg-7", provider_id="", sent_at=T0)
        other = await channel.status(PHONE, request_id="msg-8", provider_id="", sent_at=T0)
    # Alibaba lists an accepted message at once; Tencent only once its receipt is in.
    assert early.state == ("delivered" if provider == "aliyun" else "unknown")
    assert later.state == "delivered"
    # QuerySendDetails rows carry no BizId (they are found by our OutId); Tencent's SerialNo.
    assert bool(later.provider_id) == (provider == "tencent")
    assert other.state == ("absent" if provider == "aliyun" else "unknown")


@pytest.mark.parametrize("provider", sorted(CHANNELS))
async def test_a_provider_answering_5xx_is_unknown(provider: str, clock: Clock) -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(502, text="Bad Gateway"))
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(SmsDeliveryError) as refused:
            await send(CHANNELS[provider](http, clock))
    assert refused.value.code == "HTTP_502" and refused.value.unknown


def test_receipts_of_both_providers_are_read() -> None:
    [ali] = aliyun_sms.parse_receipts(
        b'[{"phone_number":"13812345678","send_time":"2026-03-01 16:00:00",'
        b'"report_time":"2026-03-01 16:00:05","success":false,"err_code":"MK:0001",'
        b'"err_msg":"\xe5\x8f\xb7\xe7\xa0\x81\xe5\x81\x9c\xe6\x9c\xba","sms_size":"1",'
        b'"biz_id":"123^0","out_id":"msg-1"}]'
    )
    assert (ali.state, ali.provider_id, ali.request_id, ali.code) == ("failed", "123^0", "msg-1",
                                                                       "MK:0001")
    assert ali.at == datetime(2026, 3, 1, 8, 0, 5, tzinfo=UTC)
    [tc] = tencent_sms.parse_receipts(
        b'[{"user_receive_time":"2026-03-01 16:00:05","nationcode":"86",'
        b'"mobile":"13812345678","report_status":"SUCCESS","errmsg":"DELIVRD",'
        b'"description":"ok","sid":"2019:-123","ext":{"context":"msg-2"}}]'
    )
    assert (tc.state, tc.provider_id, tc.request_id) == ("delivered", "2019:-123", "msg-2")
    with pytest.raises(ValueError):
        aliyun_sms.parse_receipts(b'{"not": "a list"}')


def test_template_codes_come_from_settings() -> None:
    variables = sms_variables()
    mapped = parse_template_codes(
        '{"one_time_code": "SMS_1", "contract_signed": {"code": "2001", "params": '
        '["password", "contract_number", "room", "building", "estate", "buyer_name"]}}',
        variables,
    )
    assert mapped["one_time_code"].params == ("code",)
    assert mapped["contract_signed"].params[0] == "password"
    for bad in ('{"lottery": "SMS_1"}', '{"one_time_code": {"code": "1", "params": ["x"]}}',
                '["SMS_1"]', '{"one_time_code": " "}'):
        with pytest.raises(ValueError):
            parse_template_codes(bad, variables)
    assert parse_template_codes("", variables) == {}


async def test_memory_channel_records() -> None:
    sms = MemorySmsChannel()
    assert isinstance(sms, SmsChannel)
    await sms.send(PHONE, "a", template="t", params={"k": "v"})
    await sms.send(PHONE, "c", template="t", params={})
    last = sms.last_to(PHONE)
    assert last is not None and last.text == "c" and len(sms.sent) == 2
