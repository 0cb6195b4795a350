"""WeChat subscribe messages (订阅消息) over the server API.

``POST {base}/cgi-bin/stable_token {grant_type: client_credential, appid, secret}`` gives
the access token (cached until shortly before it expires). The stable token, unlike
``/cgi-bin/token``, is the same for every caller while it is valid, so several API workers
and ``wangqian worker`` never invalidate each other's tokens. ``POST {base}/cgi-bin/
message/subscribe/send?access_token=`` takes ``{touser, template_id, page, data}``.
Errcodes that matter: 43101 (the user did not accept this template) and 40003 (openid
unknown to this app) mean "use another channel"; 40037 (template id unknown to this mini
program: a configuration error) and 47003 (bad data) are permanent; 40001/42001 (token
invalid or expired) fetch the token again once; -1 and 45009 (busy, quota) are retryable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import msgspec

__all__ = ["WeChatDeliveryError", "WeChatReceipt", "WeChatSubscribeChannel", "WeChatTokenSource"]

REFUSED_ERRCODES = frozenset({43101, 40003})
RETRYABLE_ERRCODES = frozenset({-1, 45009, 45011})
TOKEN_ERRCODES = frozenset({40001, 42001, 40014})


@dataclass(frozen=True, slots=True)
class WeChatReceipt:
    msgid: str


class WeChatDeliveryError(Exception):
    """WeChat did not deliver. ``refused`` means the user cannot get it this way at all."""

    def __init__(self, errcode: int, errmsg: str = "", *, retryable: bool = False) -> None:
        super().__init__(f"wechat errcode {errcode}: {errmsg}")
        self.code = f"WECHAT_{errcode}"
        self.errcode = errcode
        self.retryable = retryable
        self.refused = errcode in REFUSED_ERRCODES


class _Answer(msgspec.Struct):
    errcode: int = 0
    errmsg: str = ""
    msgid: int | str | None = None
    access_token: str | None = None
    expires_in: int = 0


class WeChatTokenSource:
    """The mini program's access token from ``stable_token``, kept until shortly before it
    expires; shared by every WeChat server API client of the process."""

    def __init__(
        self,
        api_base: str,
        appid: str,
        secret: str,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = api_base.rstrip("/")
        self._appid = appid
        self._secret = secret
        self.client = client
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0

    def forget(self) -> None:
        """The token was refused (refreshed elsewhere): fetch the current one next time."""
        self._token = None

    async def token(self) -> str:
        if self._token and self._clock() < self._token_expires:
            return self._token
        body = {"grant_type": "client_credential", "appid": self._appid, "secret": self._secret}
        answer = await call(self.client, "POST", self.base + "/cgi-bin/stable_token", json=body)
        if answer.errcode != 0 or not answer.access_token:
            raise WeChatDeliveryError(
                answer.errcode or -1, answer.errmsg, retryable=answer.errcode in RETRYABLE_ERRCODES
            )
        self._token = answer.access_token
        # Renew five minutes early so a token never dies in flight.
        self._token_expires = self._clock() + max(answer.expires_in - 300, 60)
        return self._token


async def call(client: httpx.AsyncClient, method: str, url: str, **kwargs: object) -> _Answer:
    try:
        response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        raise WeChatDeliveryError(-1, f"transport: {exc}", retryable=True) from exc
    if response.status_code >= 500:
        raise WeChatDeliveryError(-1, f"HTTP {response.status_code}", retryable=True)
    try:
        return msgspec.json.decode(response.content, type=_Answer)
    except msgspec.DecodeError:
        raise WeChatDeliveryError(-1, "unreadable answer", retryable=True) from None


class WeChatSubscribeChannel:
    def __init__(self, tokens: WeChatTokenSource) -> None:
        self._tokens = tokens

    async def send(
        self, openid: str, template_id: str, page: str, data: dict[str, dict[str, str]]
    ) -> WeChatReceipt:
        body = {"touser": openid, "template_id": template_id, "page": page, "data": data}
        answer = await self._post_with_token(body)
        if answer.errcode in TOKEN_ERRCODES:
            self._tokens.forget()
            answer = await self._post_with_token(body)
        if answer.errcode != 0:
            raise WeChatDeliveryError(
                answer.errcode, answer.errmsg, retryable=answer.errcode in RETRYABLE_ERRCODES
            )
        return WeChatReceipt(msgid=str(answer.msgid))

    async def _post_with_token(self, body: dict[str, object]) -> _Answer:
        token = await self._tokens.token()
        return await call(
            self._tokens.client, "POST", self._tokens.base + "/cgi-bin/message/subscribe/send",
            params={"access_token": token}, json=body,
        )
