"""Tencent Cloud SMS (API version 2021-01-11) behind ``SmsChannel``.

``SendSms``: ``SmsSdkAppId``, ``SignName``, ``TemplateId``, ``TemplateParamSet`` (the
template's variables in order: {1}, {2}, ...), ``PhoneNumberSet`` (E.164, ``+86...``) and
``SessionContext`` (our message id, given back in receipts), as a TC3-signed JSON POST
(``notifications.tc3``). The answer is ``{"Response": {"SendStatusSet": [{"SerialNo",
"PhoneNumber", "Code": "Ok", "Message", ...}], "RequestId"}}``: each number has its own
``Code`` (only ``Ok`` is a send); a request-level failure is ``Response.Error.Code``.

``PullSmsSendStatusByPhoneNumber`` lists the receipts of one number since a time, each with
``SerialNo``, ``SessionContext`` and ``ReportStatus`` (``SUCCESS``/``FAIL``). A message
not there yet may still be on its way: Tencent cannot say "never accepted".

Receipts (callback): a JSON array of ``{mobile, report_status, errmsg, description, sid,
user_receive_time, ext: {context?}}``; the provider wants ``{"result": 0, "errmsg": "OK"}``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from notifications import tc3
from notifications.sms import (
    ProviderTemplate,
    SmsDeliveryError,
    SmsReceipt,
    SmsStatus,
    decode_answer,
    decode_receipts,
    not_mapped,
    shanghai_time,
)

__all__ = ["RETRYABLE_CODES", "TencentSmsChannel", "parse_receipts"]

SERVICE = "sms"
VERSION = "2021-01-11"
DEFAULT_ENDPOINT = "https://sms.tencentcloudapi.com"

# Codes after which a later try may succeed (frequency limits, Tencent's own trouble);
# every other code needs a person (template or signature not approved, bad number, ...).
RETRYABLE_CODES = frozenset(
    {
        "LimitExceeded.PhoneNumberThirtySecondLimit",
        "LimitExceeded.PhoneNumberOneHourLimit",
        "LimitExceeded.PhoneNumberDailyLimit",
        "LimitExceeded.PhoneNumberSameContentDailyLimit",
        "LimitExceeded.DeliveryFrequencyLimit",
        "LimitExceeded.AppDailyLimit",
        "LimitExceeded.AppCountryOrRegionDailyLimit",
        "RequestLimitExceeded",
        "FailedOperation.InsufficientBalanceInSmsPackage",
        "InternalError.RequestTimeException",
        "InternalError.Timeout",
        "InternalError.OtherError",
        "InternalError",
    }
)
# Request-level codes after which Tencent may still have sent the message.
UNKNOWN_CODES = frozenset({"InternalError.Timeout", "InternalError.RequestTimeException"})


class _Error(msgspec.Struct):
    Code: str = ""
    Message: str = ""


class _SendStatus(msgspec.Struct):
    SerialNo: str = ""
    PhoneNumber: str = ""
    Code: str = ""
    Message: str = ""
    SessionContext: str = ""


class _PullStatus(msgspec.Struct):
    SerialNo: str = ""
    PhoneNumber: str = ""
    ReportStatus: str = ""
    Description: str = ""
    SessionContext: str = ""
    UserReceiveTime: str = ""


class _Response(msgspec.Struct):
    RequestId: str = ""
    Error: _Error | None = None
    SendStatusSet: list[_SendStatus] = []
    PullSmsSendStatusSet: list[_PullStatus] = []


class _Envelope(msgspec.Struct):
    Response: _Response


class _Callback(msgspec.Struct):
    mobile: str = ""
    report_status: str = ""
    errmsg: str = ""
    description: str = ""
    sid: str = ""
    user_receive_time: str = ""
    ext: dict[str, Any] = {}


def e164(phone: str) -> str:
    return phone if phone.startswith("+") else "+86" + phone



class TencentSmsChannel:
    def __init__(
        self,
        endpoint: str,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        sign_name: str,
        templates: Mapping[str, ProviderTemplate],
        client: httpx.AsyncClient,
        *,
        region: str = "ap-guangzhou",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._endpoint = endpoint.rstrip("/") + "/"
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._app_id = sdk_app_id
        self._sign_name = sign_name
        self._templates = dict(templates)
        self._client = client
        self._region = region
        self._clock = clock

    async def _call(self, action: str, body: dict[str, Any]) -> httpx.Response:
        payload = msgspec.json.encode(body)
        headers = tc3.signed_headers(
            self._secret_id, self._secret_key, service=SERVICE,
            host=urlsplit(self._endpoint).netloc, action=action, version=VERSION,
            region=self._region, timestamp=int(self._clock()), payload=payload,
        )
        return await self._client.post(self._endpoint, content=payload, headers=headers)

    async def send(self, phone: str, text: str, *, template: str,
                   params: dict[str, str], request_id: str | None = None) -> SmsReceipt:
        registered = self._templates.get(template)
        if registered is None:
            raise not_mapped(template)
        request_id = request_id or secrets.token_hex(16)
        body = {
            "PhoneNumberSet": [e164(phone)],
            "SmsSdkAppId": self._app_id,
            "SignName": self._sign_name,
            "TemplateId": registered.code,
            "TemplateParamSet": [params[name] for name in registered.params],
            "SessionContext": request_id,
        }
        try:
            response = await self._call("SendSms", body)
        except httpx.TimeoutException as exc:
            raise SmsDeliveryError("TIMEOUT", str(exc) or "timed out", unknown=True) from exc
        except httpx.HTTPError as exc:
            raise SmsDeliveryError("TRANSPORT_ERROR", str(exc), unknown=True) from exc
        envelope = decode_answer(response, _Envelope)
        status = response.status_code
        if envelope is None:
            raise SmsDeliveryError(
                f"HTTP_{status}", response.text[:200], status=status, unknown=status >= 500
            )
        answer = envelope.Response
        if answer.Error is not None:
            code = answer.Error.Code
            raise SmsDeliveryError(
                code, answer.Error.Message, status=status,
                retryable=code in RETRYABLE_CODES, unknown=code in UNKNOWN_CODES,
            )
        sent = next((s for s in answer.SendStatusSet if s.PhoneNumber == e164(phone)), None)
        if sent is None:
            raise SmsDeliveryError("NO_SEND_STATUS", "no status for the number", status=status)
        if sent.Code != "Ok":
            raise SmsDeliveryError(
                sent.Code, sent.Message, status=status, retryable=sent.Code in RETRYABLE_CODES
            )
        return SmsReceipt(message_id=sent.SerialNo, request_id=request_id)

    async def status(self, phone: str, *, request_id: str, provider_id: str,
                     sent_at: datetime) -> SmsStatus:
        begin = int(sent_at.timestamp()) - 60
        body = {
            "BeginTime": begin,
            "EndTime": max(int(self._clock()), begin + 1),
            "Offset": 0,
            "Limit": 100,
            "PhoneNumber": e164(phone),
            "SmsSdkAppId": self._app_id,
        }
        try:
            response = await self._call("PullSmsSendStatusByPhoneNumber", body)
        except httpx.HTTPError as exc:
            return SmsStatus("unknown", request_id=request_id, detail=str(exc)[:200])
        envelope = decode_answer(response, _Envelope)
        if envelope is None or envelope.Response.Error is not None:
            return SmsStatus("unknown", request_id=request_id, detail=response.text[:200])
        for row in envelope.Response.PullSmsSendStatusSet:
            if row.SessionContext == request_id or (provider_id and row.SerialNo == provider_id):
                return SmsStatus(
                    "delivered" if row.ReportStatus == "SUCCESS" else "failed",
                    provider_id=row.SerialNo, request_id=request_id, code=row.ReportStatus,
                    detail=row.Description, at=shanghai_time(row.UserReceiveTime),
                )
        # No receipt yet: it may still be on its way, or it never left.
        return SmsStatus("unknown", request_id=request_id)

    def receipts(self, body: bytes) -> list[SmsStatus]:
        return parse_receipts(body)

    def receipt_answer(self) -> dict[str, object]:
        return {"result": 0, "errmsg": "OK"}


def parse_receipts(body: bytes) -> list[SmsStatus]:
    reports = decode_receipts(body, _Callback, "Tencent Cloud")
    return [
        SmsStatus(
            "delivered" if r.report_status == "SUCCESS" else "failed",
            provider_id=r.sid, request_id=str(r.ext.get("context", "")), code=r.errmsg,
            detail=r.description, at=shanghai_time(r.user_receive_time),
        )
        for r in reports
    ]
