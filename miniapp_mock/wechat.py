"""Mock WeChat server API: ``GET /wechat/sns/jscode2session`` and a stand-in for wx.login.

`POST /wechat/login {"user": ...}` plays the mini program's ``wx.login()``: it hands out a
login code for a user key (any stable string; the same key always maps to the same
openid). Codes are single use and live 5 minutes. jscode2session answers like WeChat:
HTTP 200 with either ``{openid, session_key, unionid}`` or ``{errcode, errmsg}``.

Errors can be forced: user keys "risky" (40226), "busy" (-1) and "ratelimited" (45011),
or ``POST /wechat/faults {"next_errcode": -1}`` to fail the next jscode2session call.

Subscribe messages (订阅消息) follow the server API too: ``POST /wechat/cgi-bin/stable_token``
gives the stable access token (2 h; every caller gets the same one while it is valid,
unless ``force_refresh``), ``GET /wechat/cgi-bin/token`` a plain one (each call makes a new
token and retires the ones before it, as WeChat does), ``POST /wechat/cgi-bin/message/
subscribe/send?access_token=`` takes ``{touser, template_id, page, data}``. Template ids
are the mini program's own (``MockSettings.wechat_templates``: id -> data keys): any other
id gets 40037; a data key the template lacks, an empty value, or a value that breaks its
type (thing over 20 characters, amount not a currency sign and digits, time not 24-hour,
character_string over 32 or not letters, digits and symbols) gets 47003. They are
one-time subscriptions, as in WeChat: each "accept" of a template lets one message
through, a send without one gets 43101.
``POST /wechat/subscribe/request {"user", "results": {template_id: "accept" | "reject"}}``
plays the mini program's ``wx.requestSubscribeMessage()`` (the user's taps) and answers in
its shape; ``POST /wechat/subscriptions {"openid", "template_id", "accept"}`` does the same
for one openid (test helper; ``accept: false`` turns the template off). Unknown openids get
40003; empty data values 47003; ``POST /wechat/subscribe/faults {"next_errcode": -1,
"count": 2}`` fails the next sends. Delivered messages are listed at
``GET /wechat/subscribe/messages?openid=``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from miniapp_mock._common import Clock, new_id

CODE_TTL = timedelta(minutes=5)

ERRMSG: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40037: "invalid template_id",
    43101: "user refuse to accept the msg",
    47003: "argument invalid! data.thing1.value invalid",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "high risk user",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
}
FORCED_BY_USER = {"risky": 40226, "busy": -1, "ratelimited": 45011}


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    user: str


class FaultRequest(msgspec.Struct, forbid_unknown_fields=True):
    next_errcode: int
    count: int = 1


class SubscribeRequest(msgspec.Struct):
    touser: str
    template_id: str
    data: dict[str, dict[str, str]]
    page: str = ""
    miniprogram_state: str = "formal"
    lang: str = "zh_CN"


class StableTokenRequest(msgspec.Struct):
    grant_type: str = ""
    appid: str = ""
    secret: str = ""
    force_refresh: bool = False


_VALUE_RULES = {
    "thing": re.compile(r"[^\n]{1,20}"),
    "amount": re.compile(r"[¥$€][0-9]{1,10}(\.[0-9]{1,2})?元?"),
    "time": re.compile(
        r"([0-9]{4}年)?([0-9]{1,2}月[0-9]{1,2}日 ?)?([01]?[0-9]|2[0-3]):[0-5][0-9]"
        r"(~([01]?[0-9]|2[0-3]):[0-5][0-9])?"
    ),
    "character_string": re.compile(r"[A-Za-z0-9_\-.#@]{1,32}"),
    "number": re.compile(r"[0-9.]{1,32}"),
    "phrase": re.compile(r"[\u4e00-\u9fff]{1,5}"),
}


def value_fits(key: str, value: str) -> bool:
    """Does ``value`` fit WeChat's type of the data key ``key`` (its prefix)?"""
    rule = _VALUE_RULES.get(re.sub(r"[0-9]+$", "", key))
    return bool(value) and (rule is None or rule.fullmatch(value) is not None)


class SubscriptionChoice(msgspec.Struct, forbid_unknown_fields=True):
    openid: str
    template_id: str
    accept: bool


class SubscribeMessageRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What the user tapped in wx.requestSubscribeMessage, per template id."""

    user: str
    results: dict[str, str]


TOKEN_TTL = timedelta(hours=2)


@dataclass
class _LoginCode:
    user: str
    issued_at: datetime
    used: bool = False


def _opaque_id(namespace: str, user: str) -> str:
    # Deterministic so the same user keeps the same openid across restarts of the mock.
    digest = hmac.new(namespace.encode(), user.encode(), hashlib.sha256).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


@dataclass
class WeChatState:
    appid: str
    secret: str
    clock: Clock
    codes: dict[str, _LoginCode] = field(default_factory=dict)
    faults: deque[int] = field(default_factory=deque)
    known_openids: set[str] = field(default_factory=set)
    tokens: dict[str, datetime] = field(default_factory=dict)
    # One-time subscriptions: (openid, template id) -> messages the user has allowed.
    grants: dict[tuple[str, str], int] = field(default_factory=dict)
    subscribe_faults: deque[int] = field(default_factory=deque)
    subscribe_messages: list[dict[str, Any]] = field(default_factory=list)
    # The mini program's subscribe templates: template id -> its data keys.
    templates: dict[str, list[str]] = field(default_factory=dict)
    stable: str | None = None
    # Face verification checks (miniapp_mock.wechat_face): verify_id -> its check.
    face_checks: dict[str, Any] = field(default_factory=dict)

    def _credentials_error(self, appid: str | None, secret: str | None) -> dict[str, Any] | None:
        if not appid or not hmac.compare_digest(appid.encode(), self.appid.encode()):
            return _error(40013)
        if not secret or not hmac.compare_digest(secret.encode(), self.secret.encode()):
            return _error(40125)
        return None

    def _issue(self, token: str) -> dict[str, Any]:
        left = self.tokens[token] - self.clock()
        return {"access_token": token, "expires_in": int(left.total_seconds())}

    def access_token(self, appid: str | None, secret: str | None) -> dict[str, Any]:
        """/cgi-bin/token: a new token each call; the ones before it stop working (WeChat
        keeps them five more minutes, the mock not at all), so two processes that each
        fetch their own keep breaking each other's."""
        refused = self._credentials_error(appid, secret)
        if refused is not None:
            return refused
        token = secrets.token_urlsafe(32)
        self.tokens = {token: self.clock() + TOKEN_TTL}
        self.stable = None
        return self._issue(token)

    def stable_token(self, data: StableTokenRequest) -> dict[str, Any]:
        """/cgi-bin/stable_token: the same token for every caller while it is valid."""
        if data.grant_type != "client_credential":
            return _error(40002)
        refused = self._credentials_error(data.appid, data.secret)
        if refused is not None:
            return refused
        now = self.clock()
        current = self.stable
        if data.force_refresh or current is None or self.tokens.get(current, now) <= now:
            current = secrets.token_urlsafe(32)
            self.tokens = {current: now + TOKEN_TTL}
            self.stable = current
        return self._issue(current)

    def subscribe_send(self, access_token: str | None, message: SubscribeRequest) -> dict[str, Any]:
        expires = self.tokens.get(access_token or "")
        if expires is None or expires <= self.clock():
            return _error(40001)
        if self.subscribe_faults:
            return _error(self.subscribe_faults.popleft())
        keys = self.templates.get(message.template_id)
        if keys is None:
            return _error(40037)
        if message.touser not in self.known_openids:
            return _error(40003)
        key = (message.touser, message.template_id)
        if self.grants.get(key, 0) <= 0:
            return _error(43101)
        if not message.data or any(
            name not in keys or not value_fits(name, value.get("value", ""))
            for name, value in message.data.items()
        ):
            return _error(47003)
        self.grants[key] -= 1
        msgid = secrets.randbelow(10**12)
        self.subscribe_messages.append(
            {"msgid": msgid, **msgspec.to_builtins(message), "sent_at": self.clock().isoformat()}
        )
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def login(self, user: str) -> str:
        now = self.clock()
        # Drop stale codes so the map does not grow without bound in a long demo.
        self.codes = {c: v for c, v in self.codes.items() if now - v.issued_at < CODE_TTL}
        code = secrets.token_hex(16)
        self.codes[code] = _LoginCode(user=user, issued_at=now)
        return code

    def openid(self, user: str) -> str:
        return _opaque_id(f"openid:{self.appid}", user)

    @staticmethod
    def unionid(user: str) -> str:
        # A unionid is shared by all apps of one open-platform account, so no appid here.
        return _opaque_id("unionid", user)

    def jscode2session(self, appid: str | None, secret: str | None, js_code: str | None,
                       grant_type: str | None) -> dict[str, Any]:
        if not appid:
            return _error(41002)
        if not hmac.compare_digest(appid.encode(), self.appid.encode()):
            return _error(40013)
        if not secret:
            return _error(41004)
        if not hmac.compare_digest(secret.encode(), self.secret.encode()):
            return _error(40125)
        if grant_type != "authorization_code":
            return _error(40002)
        if not js_code:
            return _error(41008)
        if self.faults:
            return _error(self.faults.popleft())
        entry = self.codes.get(js_code)
        if entry is None or self.clock() - entry.issued_at >= CODE_TTL:
            return _error(40029)
        if entry.used:
            return _error(40163)
        entry.used = True
        if entry.user in FORCED_BY_USER:
            return _error(FORCED_BY_USER[entry.user])
        self.known_openids.add(self.openid(entry.user))
        return {
            "openid": self.openid(entry.user),
            "session_key": base64.b64encode(os.urandom(16)).decode(),
            "unionid": self.unionid(entry.user),
        }


def _error(errcode: int) -> dict[str, Any]:
    message = ERRMSG.get(errcode, "mock fault")
    return {"errcode": errcode, "errmsg": f"{message}, rid: {new_id('')[:24]}"}


@get("/wechat/sns/jscode2session")
async def jscode2session(
    wechat: NamedDependency[WeChatState],
    appid: FromQuery[str | None] = None,
    secret: FromQuery[str | None] = None,
    js_code: FromQuery[str | None] = None,
    grant_type: FromQuery[str | None] = None,
) -> dict[str, Any]:
    return wechat.jscode2session(appid, secret, js_code, grant_type)


@post("/wechat/login", status_code=200)
async def wechat_login(data: JSONBody[LoginRequest],
                       wechat: NamedDependency[WeChatState]) -> Response[dict[str, str]]:
    user = data.user.strip()
    if not user or len(user) > 64:
        return Response({"errmsg": "user must be 1..64 characters"}, status_code=400)
    return Response({"code": wechat.login(user)})


@post("/wechat/faults", status_code=200)
async def wechat_faults(data: JSONBody[FaultRequest],
                        wechat: NamedDependency[WeChatState]) -> dict[str, int]:
    """Fail the next jscode2session call with this errcode (test helper)."""
    wechat.faults.extend([data.next_errcode] * max(1, min(data.count, 1000)))
    return {"queued": len(wechat.faults)}


@get("/wechat/cgi-bin/token")
async def wechat_token(
    wechat: NamedDependency[WeChatState],
    grant_type: FromQuery[str | None] = None,
    appid: FromQuery[str | None] = None,
    secret: FromQuery[str | None] = None,
) -> dict[str, Any]:
    if grant_type != "client_credential":
        return _error(40002)
    return wechat.access_token(appid, secret)


@post("/wechat/cgi-bin/stable_token", status_code=200)
async def wechat_stable_token(
    data: JSONBody[StableTokenRequest], wechat: NamedDependency[WeChatState]
) -> dict[str, Any]:
    return wechat.stable_token(data)


@post("/wechat/cgi-bin/message/subscribe/send", status_code=200)
async def wechat_subscribe_send(
    data: JSONBody[SubscribeRequest],
    wechat: NamedDependency[WeChatState],
    access_token: FromQuery[str | None] = None,
) -> dict[str, Any]:
    return wechat.subscribe_send(access_token, data)


@post("/wechat/subscriptions", status_code=200)
async def wechat_subscriptions(
    data: JSONBody[SubscriptionChoice], wechat: NamedDependency[WeChatState]
) -> dict[str, bool]:
    """The user's choice for one openid (test helper): accept allows one more message,
    refuse turns the template off."""
    key = (data.openid, data.template_id)
    wechat.grants[key] = wechat.grants.get(key, 0) + 1 if data.accept else 0
    return {"accept": data.accept}


@post("/wechat/subscribe/request", status_code=200)
async def wechat_subscribe_request(
    data: JSONBody[SubscribeMessageRequest], wechat: NamedDependency[WeChatState]
) -> dict[str, str]:
    """Plays wx.requestSubscribeMessage: the user's taps, recorded by "WeChat", answered in
    the client API's shape ({errMsg, template id: "accept" | "reject"})."""
    openid = wechat.openid(data.user)
    wechat.known_openids.add(openid)
    answer = {"errMsg": "requestSubscribeMessage:ok"}
    for template_id, choice in list(data.results.items())[:20]:
        if choice == "accept":
            key = (openid, template_id)
            wechat.grants[key] = wechat.grants.get(key, 0) + 1
        answer[template_id] = "accept" if choice == "accept" else "reject"
    return answer


@post("/wechat/subscribe/faults", status_code=200)
async def wechat_subscribe_faults(
    data: JSONBody[FaultRequest], wechat: NamedDependency[WeChatState]
) -> dict[str, int]:
    """Fail the next ``count`` subscribe sends with this errcode (test helper)."""
    wechat.subscribe_faults.extend([data.next_errcode] * max(1, min(data.count, 1000)))
    return {"queued": len(wechat.subscribe_faults)}


@get("/wechat/subscribe/messages")
async def wechat_subscribe_messages(
    wechat: NamedDependency[WeChatState], openid: FromQuery[str | None] = None
) -> list[dict[str, Any]]:
    return [m for m in wechat.subscribe_messages if openid is None or m["touser"] == openid]


ROUTES = [
    jscode2session,
    wechat_login,
    wechat_faults,
    wechat_token,
    wechat_stable_token,
    wechat_subscribe_send,
    wechat_subscriptions,
    wechat_subscribe_request,
    wechat_subscribe_faults,
    wechat_subscribe_messages,
]
