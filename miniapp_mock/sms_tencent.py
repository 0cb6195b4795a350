"""Mock Tencent Cloud SMS (2021-01-11): ``SendSms`` and ``PullSmsSendStatusByPhoneNumber``
as TC3-signed JSON POSTs (X-TC-Action, X-TC-Version, X-TC-Timestamp), answered as Tencent
does: HTTP 200 with ``{"Response": {...}}``, a request-level ``Error`` or a ``Code`` per
number. Receipts can be pulled ``RECEIPT_DELAY`` after a send (the handset's report).
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from miniapp_mock._tencent import error as _error
from miniapp_mock._tencent import refusal
from miniapp_mock._tencent import respond as _respond
from miniapp_mock.sms_gateway import PHONE, SmsGatewayState, variable_problem

VERSION = "2021-01-11"
RECEIPT_DELAY = timedelta(seconds=5)
VARIABLE_LIMIT = 20
SHANGHAI = timezone(timedelta(hours=8))
REQUEST_LEVEL = ("AuthFailure", "InternalError", "RequestLimitExceeded", "UnauthorizedOperation",
                 "FailedOperation.TemplateIncorrectOrUnapproved")
BAD_NUMBER = "InvalidParameterValue.IncorrectPhoneNumber"
_PROBLEM_CODES = {
    "length": "InvalidParameterValue.TemplateParameterLengthLimit",
    "link": "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
    "bracket": "InvalidParameterValue.TemplateParameterFormatError",
}


class SendRequest(msgspec.Struct, forbid_unknown_fields=True):
    PhoneNumberSet: list[str]
    SmsSdkAppId: str
    TemplateId: str
    SignName: str = ""
    TemplateParamSet: list[str] = []
    SessionContext: str = ""
    ExtendCode: str = ""
    SenderId: str = ""


class PullRequest(msgspec.Struct, forbid_unknown_fields=True):
    BeginTime: int
    Offset: int
    Limit: int
    PhoneNumber: str
    SmsSdkAppId: str
    EndTime: int | None = None


def _send(body: bytes, state: SmsGatewayState) -> Response[dict[str, Any]]:
    try:
        data = msgspec.json.decode(body, type=SendRequest)
    except msgspec.DecodeError as exc:
        return _error("InvalidParameter", str(exc))
    if data.SmsSdkAppId != state.app_id:
        return _error("UnauthorizedOperation.SmsSdkAppIdVerifyFail")
    if data.SignName != state.sign_name:
        return _error("FailedOperation.SignatureIncorrectOrUnapproved")
    spec = state.templates.get(data.TemplateId)
    if spec is None:
        return _error("FailedOperation.TemplateIncorrectOrUnapproved")
    names = state.variables(data.TemplateId)
    if len(data.TemplateParamSet) != len(names):
        return _error("InvalidParameterValue.TemplateParameterFormatError")
    limit = 6 if spec.verification else VARIABLE_LIMIT
    for value in data.TemplateParamSet:
        problem = variable_problem(value, limit)
        if problem is not None:
            return _error(_PROBLEM_CODES[problem])
    fault = state.next_fault()
    if fault is not None and fault.mode == "refuse" and fault.next_code.startswith(REQUEST_LEVEL):
        return _error(fault.next_code, fault.message)
    statuses = []
    for number in data.PhoneNumberSet:
        if not number.startswith("+86") or not PHONE.fullmatch(number[3:]):
            statuses.append({"PhoneNumber": number, "Code": BAD_NUMBER,
                             "Message": "手机号格式错误", "SerialNo": "", "Fee": 0})
            continue
        if fault is not None and fault.mode == "refuse":
            statuses.append({"PhoneNumber": number, "Code": fault.next_code,
                             "Message": fault.message, "SerialNo": "", "Fee": 0})
            continue
        sent = state.deliver("tencent", number[3:], data.TemplateId,
                             dict(zip(names, data.TemplateParamSet, strict=True)),
                             data.SessionContext)
        statuses.append({"PhoneNumber": number, "Code": "Ok", "Message": "send success",
                         "SerialNo": sent.message_id, "Fee": 1,
                         "SessionContext": data.SessionContext, "IsoCode": "CN"})
    if fault is not None and fault.mode == "deliver":
        return Response({"message": fault.message or fault.next_code}, status_code=fault.status)
    return _respond(SendStatusSet=statuses)


def _pull(body: bytes, state: SmsGatewayState) -> Response[dict[str, Any]]:
    try:
        data = msgspec.json.decode(body, type=PullRequest)
    except msgspec.DecodeError as exc:
        return _error("InvalidParameter", str(exc))
    if data.SmsSdkAppId != state.app_id:
        return _error("UnauthorizedOperation.SmsSdkAppIdVerifyFail")
    now = state.clock()
    end = data.EndTime if data.EndTime is not None else int(now.timestamp())
    rows = [
        m for m in state.sent
        if m.provider == "tencent" and "+86" + m.phone == data.PhoneNumber
        and data.BeginTime <= m.sent_at.timestamp() <= end and now - m.sent_at >= RECEIPT_DELAY
    ]
    shown = rows[data.Offset : data.Offset + min(max(data.Limit, 1), 100)]
    return _respond(PullSmsSendStatusSet=[
        {
            "UserReceiveTime": (m.sent_at + RECEIPT_DELAY).astimezone(SHANGHAI).strftime(
                "%Y-%m-%d %H:%M:%S"),
            "CountryCode": "86",
            "SubscriberNumber": m.phone,
            "PhoneNumber": "+86" + m.phone,
            "SerialNo": m.message_id,
            "ReportStatus": "SUCCESS",
            "Description": "用户短信送达成功",
            "SessionContext": m.out_id,
        }
        for m in shown
    ])


@post(["/sms/tencent", "/sms/tencent/"], status_code=200)
async def tencent_endpoint(
    request: Request, sms_gateway: NamedDependency[SmsGatewayState]
) -> Response[dict[str, Any]]:
    body = await request.body()
    refused = refusal(
        request, body, service="sms", version=VERSION, secret_id=sms_gateway.access_key,
        secret_key=sms_gateway.secret, now=sms_gateway.clock(),
    )
    if refused is not None:
        return _error(refused)
    action = request.headers.get("x-tc-action", "")
    if action == "SendSms":
        return _send(body, sms_gateway)
    if action == "PullSmsSendStatusByPhoneNumber":
        return _pull(body, sms_gateway)
    return _error("InvalidAction", f"The action {action} does not exist.")


ROUTES = [tencent_endpoint]
