"""Mock Alibaba Cloud SMS (dysmsapi 2017-05-25): ``SendSms`` and ``QuerySendDetails`` as
V3-signed (ACS3-HMAC-SHA256) POSTs with their parameters in the query string, answered
in Alibaba's shapes and codes. The signature is recomputed from what arrived (method,
path, query, signed headers, body hash) with the account's secret.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from miniapp_mock.sms_gateway import PHONE, SmsGatewayState, variable_problem
from notifications import acs3

VERSION = "2017-05-25"
DATE_TOLERANCE = timedelta(minutes=15)
SHANGHAI = timezone(timedelta(hours=8))
VARIABLE_LIMIT = 35  # "单个变量的长度限制为1~35个字符"
_PROBLEM_CODES = {
    "length": ("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制"),
    "link": ("isv.PARAM_NOT_SUPPORT_URL", "不支持URL"),
    "bracket": ("isv.INVALID_PARAMETERS", "参数异常"),
}


def _answer(code: str, message: str, status: int = 200, **extra: Any) -> Response[dict[str, Any]]:
    request_id = secrets.token_hex(8).upper()
    return Response({"Code": code, "Message": message, "RequestId": request_id, **extra},
                    status_code=status)


def raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return raw.decode("latin-1").split("?", 1)[0]


def _authenticate(
    request: Request, query: dict[str, str], body: bytes, state: SmsGatewayState
) -> Response[dict[str, Any]] | None:
    headers = request.headers
    call = acs3.parse_authorization(headers.get("authorization", ""))
    if call is None:
        return _answer("IncompleteSignature", "The request signature is not complete.", 400)
    if not hmac.compare_digest(call.access_key_id.encode(), state.access_key.encode()):
        return _answer("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
    try:
        signed_at = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return _answer("InvalidTimeStamp.Format", "Specified time stamp is not valid.", 400)
    if abs(state.clock() - signed_at.replace(tzinfo=UTC)) > DATE_TOLERANCE:
        return _answer("InvalidTimeStamp.Expired", "Specified time stamp is expired.", 400)
    names = call.signed_headers.split(";")
    required = {"host", "x-acs-action", "x-acs-version", "x-acs-date",
                "x-acs-signature-nonce", "x-acs-content-sha256"}
    if not required <= set(names) or headers.get("x-acs-content-sha256") != acs3.content_hash(body):
        return _answer("IncompleteSignature", "The request signature is not complete.", 400)
    expected = acs3.authorization(
        call.access_key_id, state.secret, method=request.method, path=raw_path(request),
        query=query, headers={name: headers.get(name, "") for name in names}, body=body,
    )
    if not hmac.compare_digest(expected.encode(), headers.get("authorization", "").encode()):
        return _answer("SignatureDoesNotMatch", "Specified signature is not matched.", 400)
    if state.nonce_seen(headers.get("x-acs-signature-nonce", "")):
        return _answer("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
    return None


def _send(query: dict[str, str], state: SmsGatewayState) -> Response[dict[str, Any]]:
    phone = query.get("PhoneNumbers", "")
    code = query.get("TemplateCode", "")
    if not PHONE.fullmatch(phone.removeprefix("86").removeprefix("+86")):
        return _answer("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
    if query.get("SignName") != state.sign_name:
        return _answer("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
    if code not in state.templates:
        return _answer("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
    try:
        params = msgspec.json.decode(query.get("TemplateParam", "{}"), type=dict[str, str])
    except msgspec.DecodeError:
        return _answer("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
    wanted = state.variables(code)
    if set(wanted) - set(params):
        return _answer("isv.TEMPLATE_MISSING_PARAMETERS", "模板缺少变量")
    limit = 6 if state.templates[code].verification else VARIABLE_LIMIT
    for name in wanted:
        problem = variable_problem(params[name], limit)
        if problem is not None:
            return _answer(*_PROBLEM_CODES[problem])
    fault = state.next_fault()
    if fault is not None and fault.mode == "refuse":
        return _answer(fault.next_code, fault.message or fault.next_code, fault.status)
    sent = state.deliver("aliyun", phone[-11:], code, {n: params[n] for n in wanted},
                         query.get("OutId", ""))
    if fault is not None:
        return _answer(fault.next_code, fault.message or fault.next_code, fault.status)
    return _answer("OK", "OK", BizId=f"{sent.message_id[4:20]}^0")


def _query_details(query: dict[str, str], state: SmsGatewayState) -> Response[dict[str, Any]]:
    phone = query.get("PhoneNumber", "")
    day = query.get("SendDate", "")
    try:
        size = min(max(int(query.get("PageSize", "10")), 1), 50)
        page = max(int(query.get("CurrentPage", "1")), 1)
    except ValueError:
        return _answer("isv.INVALID_PARAMETERS", "参数异常")
    rows = [
        m for m in state.sent
        if m.provider == "aliyun" and m.phone == phone[-11:]
        and m.sent_at.astimezone(SHANGHAI).strftime("%Y%m%d") == day
    ]
    shown = rows[(page - 1) * size : page * size]
    details = [
        {
            "SendStatus": m.status,
            "ErrCode": "DELIVERED",
            "TemplateCode": next(c for c, t in state.templates.items() if t.name == m.template),
            "Content": m.text,
            "OutId": m.out_id,
            "PhoneNum": m.phone,
            "SendDate": m.sent_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
            "ReceiveDate": m.sent_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
        }
        for m in shown
    ]
    return _answer("OK", "OK", TotalCount=len(rows),
                   SmsSendDetailDTOs={"SmsSendDetailDTO": details})


@post(["/sms/aliyun", "/sms/aliyun/"], status_code=200)
async def aliyun_endpoint(
    request: Request, sms_gateway: NamedDependency[SmsGatewayState]
) -> Response[dict[str, Any]]:
    body = await request.body()
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    refused = _authenticate(request, query, body, sms_gateway)
    if refused is not None:
        return refused
    if request.headers.get("x-acs-version") != VERSION:
        return _answer("InvalidVersion", "Specified parameter Version is not valid.", 400)
    action = request.headers.get("x-acs-action", "")
    if action == "SendSms":
        return _send(query, sms_gateway)
    if action == "QuerySendDetails":
        return _query_details(query, sms_gateway)
    return _answer("InvalidAction.NotFound", "Specified api is not found.", 404)


ROUTES = [aliyun_endpoint]
