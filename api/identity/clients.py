"""Outbound HTTP clients of the identity context: WeChat, identity provider, face check, SMS.

All share one ``httpx.AsyncClient`` made by ``create_app``. In tests that client gets an
``httpx.ASGITransport`` and reaches the mock services in process (no sockets); in the
demo it calls ``{public_base_url}/mock`` over loopback; in production the configured bases.

Provider answers become ``DomainError``s with stable codes here, so services and routes
never see a provider's own error vocabulary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import httpx
import msgspec

from api.core.errors import DomainError

log = logging.getLogger("wangqian.identity.clients")

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def _unavailable(service: str, detail: str) -> DomainError:
    return DomainError(f"{service}_unavailable", detail, retry_after=30)


# ------------------------------------------------------------------ WeChat


class _Code2Session(msgspec.Struct):
    openid: str = ""
    unionid: str = ""
    errcode: int = 0
    errmsg: str = ""


@dataclass(frozen=True)
class WeChatIdentity:
    openid: str
    unionid: str


# WeChat's errcodes that the user (not our configuration) can cause, as our refusals
# (code, detail, seconds to wait before trying again).
WECHAT_ERRORS: dict[int, tuple[str, str, int | None]] = {
    40029: ("wechat_code_invalid", "微信登录凭证无效或已过期，请重新进入小程序。", None),
    40163: ("wechat_code_used", "微信登录凭证已使用，请重新进入小程序。", None),
    45011: ("wechat_rate_limited", "微信登录过于频繁，请一分钟后再试。", 60),
    40226: ("wechat_risky_user", "微信判定该账号存在风险，暂不能登录。", None),
    -1: ("wechat_busy", "微信服务繁忙，请稍后再试。", 60),
}


class WeChatClient:
    def __init__(self, base: str, appid: str, secret: str, http: httpx.AsyncClient) -> None:
        self._base = base
        self._appid = appid
        self._secret = secret
        self._http = http

    async def code2session(self, code: str) -> WeChatIdentity:
        if not (self._base and self._appid and self._secret):
            raise _unavailable("wechat", "微信登录未配置。")
        try:
            response = await self._http.get(
                f"{self._base}/sns/jscode2session",
                params={
                    "appid": self._appid,
                    "secret": self._secret,
                    "js_code": code,
                    "grant_type": "authorization_code",
                },
            )
            answer = msgspec.json.decode(response.content, type=_Code2Session)
        except (httpx.HTTPError, msgspec.DecodeError) as exc:
            log.warning("jscode2session failed: %s", type(exc).__name__)
            raise _unavailable("wechat", "暂时无法连接微信，请稍后再试。") from None
        if answer.errcode:
            known = WECHAT_ERRORS.get(answer.errcode)
            if known is None:
                # Our appid/secret or an unknown failure: a configuration problem, not the user's.
                log.error("jscode2session errcode %s: %s", answer.errcode, answer.errmsg)
                raise _unavailable("wechat", "微信登录暂不可用，请稍后再试。")
            code, detail, retry_after = known
            if retry_after is None:
                raise DomainError(code, detail)
            raise DomainError(code, detail, retry_after=retry_after)
        if not answer.openid:
            raise _unavailable("wechat", "微信返回的数据不完整，请稍后再试。")
        return WeChatIdentity(openid=answer.openid, unionid=answer.unionid)


# ------------------------------------------------------------------ identity provider


class _IdCheckAnswer(msgspec.Struct):
    result: str = ""


IdCheckResult = Literal["match", "mismatch", "not_found"]


class IdCheckClient:
    """Two-element real-name check (二要素核验): does this name go with this ID number?"""

    def __init__(self, base: str, key: str, http: httpx.AsyncClient) -> None:
        self._base = base
        self._key = key
        self._http = http

    async def verify(self, name: str, id_number: str) -> IdCheckResult:
        if not (self._base and self._key):
            raise _unavailable("idcheck", "实名核验服务未配置。")
        try:
            response = await self._http.post(
                f"{self._base}/idcheck/verify",
                json={"name": name, "id_number": id_number},
                headers={"Authorization": f"Bearer {self._key}"},
            )
            answer = msgspec.json.decode(response.content, type=_IdCheckAnswer)
        except (httpx.HTTPError, msgspec.DecodeError) as exc:
            log.warning("idcheck failed: %s", type(exc).__name__)
            raise _unavailable("idcheck", "实名核验服务暂时不可用，请稍后再试。") from None
        if response.status_code != 200 or answer.result not in ("match", "mismatch", "not_found"):
            log.error("idcheck answered HTTP %s", response.status_code)
            raise _unavailable("idcheck", "实名核验服务暂时不可用，请稍后再试。")
        return answer.result  # type: ignore[return-value]


# ------------------------------------------------------------------ face verification


class _DetectAuth(msgspec.Struct):
    biz_token: str = ""
    url: str = ""


class FaceResult(msgspec.Struct):
    status: str = ""
    id_number: str = ""
    name: str = ""
    similarity: float | None = None


class FaceClient:
    """Face verification by redirect: start with the identity, fetch the result by token."""

    def __init__(self, base: str, key: str, http: httpx.AsyncClient) -> None:
        self._base = base
        self._key = key
        self._http = http

    async def _post(self, path: str, body: dict[str, str]) -> httpx.Response:
        if not (self._base and self._key):
            raise _unavailable("face", "人脸核身服务未配置。")
        try:
            return await self._http.post(
                f"{self._base}{path}", json=body, headers={"Authorization": f"Bearer {self._key}"}
            )
        except httpx.HTTPError as exc:
            log.warning("face provider call failed: %s", type(exc).__name__)
            raise _unavailable("face", "人脸核身服务暂时不可用，请稍后再试。") from None

    async def start(self, *, id_number: str, name: str, redirect_url: str) -> tuple[str, str]:
        """(biz_token, url of the provider's page)."""
        response = await self._post(
            "/face/detect-auth",
            {"id_number": id_number, "name": name, "redirect_url": redirect_url},
        )
        try:
            answer = msgspec.json.decode(response.content, type=_DetectAuth)
        except msgspec.DecodeError:
            answer = _DetectAuth()
        if response.status_code != 200 or not answer.biz_token or not answer.url:
            log.error("face detect-auth answered HTTP %s", response.status_code)
            raise _unavailable("face", "人脸核身服务暂时不可用，请稍后再试。")
        return answer.biz_token, answer.url

    async def result(self, biz_token: str) -> FaceResult:
        response = await self._post("/face/get-detect-info", {"biz_token": biz_token})
        try:
            answer = msgspec.json.decode(response.content, type=FaceResult)
        except msgspec.DecodeError:
            answer = FaceResult()
        if response.status_code != 200 or answer.status not in (
            "pending",
            "passed",
            "failed",
            "expired",
        ):
            log.error("face get-detect-info answered HTTP %s", response.status_code)
            raise _unavailable("face", "人脸核身服务暂时不可用，请稍后再试。")
        return answer
