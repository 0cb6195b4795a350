"""Alibaba Cloud SMS (dysmsapi, API version 2017-05-25) behind ``SmsChannel``.

``SendSms``: ``PhoneNumbers``, ``SignName``, ``TemplateCode``, ``TemplateParam`` (a JSON
object of the template's variables) and ``OutId`` (our message id, given back by
``QuerySendDetails`` and in receipts), in the query string of a V3-signed POST
(``notifications.acs3``). The answer is always JSON: ``{"Code": "OK", "BizId", "RequestId",
"Message"}`` when accepted; any other ``Code`` (even in an HTTP 200, e.g.
``isv.BUSINESS_LIMIT_CONTROL``) is a refusal.

``QuerySendDetails`` (``PhoneNumber``, ``SendDate`` yyyyMMdd, ``PageSize``, ``CurrentPage``)
lists what was sent to a number that day with ``SendStatus`` 1 (waiting for the receipt),
2 (failed) or 3 (delivered) and the ``OutId``: a message found there was accepted; one
absent was not.

Receipts (SmsReport, HTTP batch push): a JSON array of ``{phone_number, success, err_code,
err_msg, biz_id, out_id, report_time, ...}``; the provider wants ``{"code": 0}`` back.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import msgspec

from notifications import acs3
from notifications.sms import (
    SHANGHAI,
    ProviderTemplate,
    SmsDeliveryError,
    SmsReceipt,
    SmsStatus,
    decode_answer,
    decode_receipts,
    not_mapped,
    shanghai_time,
)

__all__ = ["RETRYABLE_CODES", "AliyunSmsChannel", "parse_receipts"]

VERSION = "2017-05-25"
DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com"

# Codes after which a later try may succeed; every other code needs a person (a template
# not approved, a bad number, an account problem).
RETRYABLE_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",  # per-number minute/hour/day flow control
        "isv.DAY_LIMIT_CONTROL",
        "isp.SYSTEM_ERROR",
        "isv.OUT_OF_SERVICE",  # arrears: works again once topped up
        "isv.AMOUNT_NOT_ENOUGH",
        "Throttling.User",
        "Throttling",
        "ServiceUnavailable",
        "InternalError",
    }
)


class _Answer(msgspec.Struct):
    Code: str = ""
    Message: str = ""
    BizId: str = ""
    RequestId: str = ""


class _Detail(msgspec.Struct):
    SendStatus: int = 0
    ErrCode: str = ""
    OutId: str = ""
    ReceiveDate: str = ""
    TemplateCode: str = ""


class _Details(msgspec.Struct):
    SmsSendDetailDTO: list[_Detail] = []


class _QueryAnswer(msgspec.Struct):
    Code: str = ""
    Message: str = ""
    TotalCount: int = 0
    SmsSendDetailDTOs: _Details = msgspec.field(default_factory=_Details)


class _Report(msgspec.Struct):
    phone_number: str = ""
    success: bool = False
    err_code: str = ""
    err_msg: str = ""
    biz_id: str = ""
    out_id: str = ""
    report_time: str = ""



class AliyunSmsChannel:
    def __init__(
        self,
        endpoint: str,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        templates: Mapping[str, ProviderTemplate],
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._endpoint = endpoint.rstrip("/") + "/"
        self._key_id = access_key_id
        self._secret = access_key_secret
        self._sign_name = sign_name
        self._templates = dict(templates)
        self._client = client
        self._clock = clock

    async def _call(self, action: str, query: dict[str, str]) -> httpx.Response:
        url = urlsplit(self._endpoint)
        now = datetime.fromtimestamp(self._clock(), UTC)
        headers = {
            "host": url.netloc,
            "x-acs-action": action,
            "x-acs-version": VERSION,
            "x-acs-date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x-acs-signature-nonce": secrets.token_hex(16),
            "x-acs-content-sha256": acs3.content_hash(),
        }
        headers["Authorization"] = acs3.authorization(
            self._key_id, self._secret, method="POST", path=url.path or "/", query=query,
            headers=headers,
        )
        # The query string is sent exactly as it was signed.
        target = f"{self._endpoint}?{acs3.canonical_query(query)}"
        return await self._client.post(target, headers=headers)

    async def send(self, phone: str, text: str, *, template: str,
                   params: dict[str, str], request_id: str | None = None) -> SmsReceipt:
        registered = self._templates.get(template)
        if registered is None:
            raise not_mapped(template)
        request_id = request_id or secrets.token_hex(16)
        query = {
            "PhoneNumbers": phone,
            "SignName": self._sign_name,
            "TemplateCode": registered.code,
            "TemplateParam": msgspec.json.encode(
                {name: params[name] for name in registered.params}
            ).decode(),
            "OutId": request_id,
        }
        try:
            response = await self._call("SendSms", query)
        except httpx.TimeoutException as exc:
            raise SmsDeliveryError("TIMEOUT", str(exc) or "timed out", unknown=True) from exc
        except httpx.HTTPError as exc:
            # Nothing was answered: the request may or may not have arrived.
            raise SmsDeliveryError("TRANSPORT_ERROR", str(exc), unknown=True) from exc
        answer = decode_answer(response, _Answer)
        status = response.status_code
        if answer is None or not answer.Code:
            raise SmsDeliveryError(
                f"HTTP_{status}", response.text[:200], status=status, unknown=status >= 500
            )
        if answer.Code != "OK":
            raise SmsDeliveryError(
                answer.Code, answer.Message, status=status,
                retryable=answer.Code in RETRYABLE_CODES,
            )
        if not answer.BizId:
            raise SmsDeliveryError("NO_BIZ_ID", "accepted without a BizId", status=status)
        return SmsReceipt(message_id=answer.BizId, request_id=request_id)

    async def status(self, phone: str, *, request_id: str, provider_id: str,
                     sent_at: datetime) -> SmsStatus:
        query = {
            "PhoneNumber": phone,
            "SendDate": sent_at.astimezone(SHANGHAI).strftime("%Y%m%d"),
            "PageSize": "50",
            "CurrentPage": "1",
        }
        if provider_id:
            query["BizId"] = provider_id
        try:
            response = await self._call("QuerySendDetails", query)
        except httpx.HTTPError as exc:
            return SmsStatus("unknown", request_id=request_id, detail=str(exc)[:200])
        answer = decode_answer(response, _QueryAnswer)
        if answer is None or answer.Code != "OK":
            detail = answer.Message if answer is not None else response.text[:200]
            return SmsStatus("unknown", request_id=request_id, detail=detail)
        for row in answer.SmsSendDetailDTOs.SmsSendDetailDTO:
            if row.OutId == request_id or (provider_id and not row.OutId):
                state = {3: "delivered", 2: "failed"}.get(row.SendStatus, "pending")
                return SmsStatus(
                    state,  # type: ignore[arg-type]
                    provider_id=provider_id, request_id=request_id, code=row.ErrCode,
                    at=shanghai_time(row.ReceiveDate),
                )
        # The day's list (at most 50 a page; a person gets far fewer) does not hold it.
        return SmsStatus("absent", request_id=request_id)

    def receipts(self, body: bytes) -> list[SmsStatus]:
        return parse_receipts(body)

    def receipt_answer(self) -> dict[str, object]:
        return {"code": 0, "msg": "成功"}


def parse_receipts(body: bytes) -> list[SmsStatus]:
    """SmsReport pushes; raises ``ValueError`` when the body is not one."""
    reports = decode_receipts(body, _Report, "Alibaba Cloud")
    return [
        SmsStatus(
            "delivered" if r.success else "failed",
            provider_id=r.biz_id, request_id=r.out_id, code=r.err_code, detail=r.err_msg,
            at=shanghai_time(r.report_time),
        )
        for r in reports
    ]
