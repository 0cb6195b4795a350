"""WeChat login (``jscode2session``), the outbound client of the identity context; the
identity and face providers are in ``face_providers``.

It shares one ``httpx.AsyncClient`` made by ``create_app``. In tests that client gets an
``httpx.ASGITransport`` and reaches the mock services in process (no sockets); in the
demo it calls ``{public_base_url}/mock`` over loopback; in production the configured base.

Provider answers become ``DomainError``s with stable codes here, so services and routes
never see a provider's own error vocabulary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
