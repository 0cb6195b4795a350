"""Mock Tencent Cloud FaceID (2018-03-01): the real-name check ``IdCardVerification`` and
the H5 face check ``DetectAuth`` / ``GetDetectInfoEnhanced``, as TC3-signed JSON POSTs to
``/faceid`` (service ``faceid``) answered in Tencent's shapes; and the H5 page the
``DetectAuth`` ``Url`` opens.

1. ``DetectAuth {RuleId, IdCard, Name, RedirectUrl}`` -> ``{Url, BizToken}``; the BizToken
   lives ``TOKEN_TTL`` (the real one two hours; the mock shorter to test expiry).
2. The browser opens ``Url`` (``GET /face/page?biz_token=``), a page with a pass and a fail
   button; pressing one records the outcome once and redirects to ``RedirectUrl`` with
   ``token=<BizToken>`` as Tencent does.
3. ``GetDetectInfoEnhanced {BizToken, RuleId, InfoType}`` -> ``{Text: {ErrCode, ErrMsg,
   IdCard, Name, Sim, ...}}``: ErrCode null while unfinished, 0 on a pass, 2004 (similarity
   too low) on a fail; an expired token is ``InvalidParameterValue.BizTokenExpired``.

``IdCardVerification {IdCard, Name}`` -> ``{Result, Description}`` against the mock ID
database (``MockSettings.people``): "0" match, "-1" mismatch, "-5" not found. ``POST
/faceid/people`` adds a person and ``POST /faceid/faults {"result": "-4", "count": 2}``
makes the next checks answer a provider error (test helpers, not Tencent's API).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, URLEncodedBody
from litestar.response import Redirect

from miniapp_mock._common import Clock, new_id, normalize_id_number
from miniapp_mock._tencent import error as _error
from miniapp_mock._tencent import refusal
from miniapp_mock._tencent import respond as _respond
from miniapp_mock.face_page import render_page

VERSION = "2018-03-01"
TOKEN_TTL = timedelta(minutes=30)
SIM_PASSED = "93.50"
SIM_FAILED = "41.20"
ID_DESCRIPTIONS = {"0": "姓名和身份证号一致", "-1": "姓名和身份证号不一致",
                   "-4": "证件库服务异常", "-5": "证件库中无此身份证记录",
                   "-6": "权威比对系统升级中，请稍后再试"}

Status = Literal["pending", "passed", "failed"]


class PersonRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    id_number: str


class FaultRequest(msgspec.Struct, forbid_unknown_fields=True):
    result: str = "-4"
    count: int = 1


@dataclass
class CompleteForm:
    biz_token: str
    result: str


@dataclass
class _Session:
    biz_token: str
    id_number: str
    name: str
    redirect_url: str
    created_at: datetime
    status: Status = "pending"


@dataclass
class FaceIdState:
    secret_id: str
    secret_key: str
    rule_id: str
    clock: Clock
    public_base_url: str
    api_public_base: str
    people: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, _Session] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.people = {normalize_id_number(k): v.strip() for k, v in self.people.items()}

    def check(self, name: str, id_number: str) -> str:
        known = self.people.get(normalize_id_number(id_number))
        if known is None:
            return "-5"
        return "0" if known == name.strip() else "-1"

    def expired(self, session: _Session) -> bool:
        return self.clock() - session.created_at >= TOKEN_TTL


def _id_card(data: dict[str, Any], state: FaceIdState) -> Response[dict[str, Any]]:
    id_card, name = str(data.get("IdCard", "")), str(data.get("Name", ""))
    if not id_card or not name:
        return _error("InvalidParameter", "IdCard and Name are required")
    result = state.faults.pop(0) if state.faults else state.check(name, id_card)
    return _respond(Result=result, Description=ID_DESCRIPTIONS.get(result, "其他"))


def _detect_auth(data: dict[str, Any], state: FaceIdState) -> Response[dict[str, Any]]:
    if str(data.get("RuleId", "")) != state.rule_id:
        return _error("InvalidParameterValue.RuleIdNotExist", "RuleId不存在")
    redirect = str(data.get("RedirectUrl") or state.api_public_base)
    parts = urlsplit(redirect)
    home = urlsplit(state.api_public_base)
    # Like the real service, only redirect back to the registered site (no open redirect).
    if parts.scheme not in ("http", "https") or (parts.scheme, parts.netloc.lower()) != (
        home.scheme, home.netloc.lower()
    ):
        return _error("InvalidParameterValue", "RedirectUrl不在业务域名下")
    token = new_id("").upper()[:32]
    state.sessions[token] = _Session(
        token, normalize_id_number(str(data.get("IdCard", ""))), str(data.get("Name", "")).strip(),
        redirect, state.clock(),
    )
    url = f"{state.public_base_url.rstrip('/')}/face/page?{urlencode({'biz_token': token})}"
    return _respond(Url=url, BizToken=token)


def _detect_info(data: dict[str, Any], state: FaceIdState) -> Response[dict[str, Any]]:
    session = state.sessions.get(str(data.get("BizToken", "")))
    if session is None:
        return _error("InvalidParameterValue.BizTokenIllegal", "BizToken不合法")
    if session.status == "pending":
        if state.expired(session):
            return _error("InvalidParameterValue.BizTokenExpired", "BizToken过期")
        return _respond(Text={"ErrCode": None, "ErrMsg": None, "IdCard": None, "Name": None})
    passed = session.status == "passed"
    return _respond(Text={
        "ErrCode": 0 if passed else 2004,
        "ErrMsg": "成功" if passed else "比对相似度未达到通过标准",
        "IdCard": session.id_number,
        "Name": session.name,
        "Sim": SIM_PASSED if passed else SIM_FAILED,
        "LiveStatus": 0,
        "Comparestatus": 0 if passed else 2004,
    })


ACTIONS = {"IdCardVerification": _id_card, "DetectAuth": _detect_auth,
           "GetDetectInfoEnhanced": _detect_info}


@post(["/faceid", "/faceid/"], status_code=200)
async def faceid_endpoint(
    request: Request, faceid: NamedDependency[FaceIdState]
) -> Response[dict[str, Any]]:
    body = await request.body()
    refused = refusal(
        request, body, service="faceid", version=VERSION, secret_id=faceid.secret_id,
        secret_key=faceid.secret_key, now=faceid.clock(),
    )
    if refused is not None:
        return _error(refused)
    action = request.headers.get("x-tc-action", "")
    handler = ACTIONS.get(action)
    if handler is None:
        return _error("InvalidAction", f"The action {action} does not exist.")
    try:
        data = msgspec.json.decode(body, type=dict[str, Any])
    except msgspec.DecodeError:
        return _error("InvalidParameter", "body is not JSON")
    faceid.calls.append(action)
    return handler(data, faceid)


@post("/faceid/people", status_code=200)
async def faceid_add_person(
    data: JSONBody[PersonRequest], faceid: NamedDependency[FaceIdState]
) -> dict[str, bool]:
    """Register a person in the mock ID database (test helper)."""
    faceid.people[normalize_id_number(data.id_number)] = data.name.strip()
    return {"ok": True}


@post("/faceid/faults", status_code=200)
async def faceid_faults(
    data: JSONBody[FaultRequest], faceid: NamedDependency[FaceIdState]
) -> dict[str, int]:
    """The next ``count`` IdCardVerification calls answer ``result`` (test helper)."""
    faceid.faults.extend([data.result] * max(1, min(data.count, 100)))
    return {"queued": len(faceid.faults)}


def _with_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


@get("/face/page", media_type=MediaType.HTML)
async def face_page(
    biz_token: FromQuery[str], faceid: NamedDependency[FaceIdState]
) -> Response[str]:
    session = faceid.sessions.get(biz_token)
    if session is None:
        return Response(render_page(None), media_type=MediaType.HTML, status_code=404)
    status: str = session.status
    if status == "pending" and faceid.expired(session):
        status = "expired"
    registered = faceid.check(session.name, session.id_number) == "0"
    page = render_page(session.name, session.id_number, session.biz_token, status, registered)
    return Response(page, media_type=MediaType.HTML)


@post("/face/page/complete")
async def face_page_complete(
    data: URLEncodedBody[CompleteForm], faceid: NamedDependency[FaceIdState]
) -> Response[str] | Redirect:
    session = faceid.sessions.get(data.biz_token)
    if session is None:
        return Response(render_page(None), media_type=MediaType.HTML, status_code=404)
    # First answer wins; after expiry nothing can be recorded any more.
    if session.status == "pending" and not faceid.expired(session):
        registered = faceid.check(session.name, session.id_number) == "0"
        session.status = "passed" if data.result == "pass" and registered else "failed"
    return Redirect(_with_token(session.redirect_url, session.biz_token), status_code=303)


ROUTES = [faceid_endpoint, faceid_add_person, faceid_faults, face_page, face_page_complete]
