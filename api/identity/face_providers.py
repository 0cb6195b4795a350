"""The identity providers on their own wire protocols: the real-name check (Tencent Cloud
FaceID ``IdCardVerification``) and the face check (Tencent Cloud FaceID ``DetectAuth`` /
``GetDetectInfoEnhanced``, or WeChat's face verification for government mini programs,
``getverifyid`` / ``queryverifyinfo``).

Provider answers become our own vocabulary here (``IdCheckResult``, ``FaceOutcome``) or a
``DomainError`` with a stable code, so the rules never see a provider's codes. A provider
error is never a "match" and never a "passed".
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import msgspec

from api.core.errors import DomainError
from notifications import tc3
from notifications.wechat import WeChatDeliveryError, WeChatTokenSource

log = logging.getLogger("wangqian.identity.providers")

FACEID_VERSION = "2018-03-01"
FACEID_ENDPOINT = "https://faceid.tencentcloudapi.com"
IdCheckResult = Literal["match", "mismatch", "not_found"]


def unavailable(service: str, detail: str) -> DomainError:
    return DomainError(f"{service}_unavailable", detail, retry_after=30)


class ProviderError(Exception):
    """The provider could not answer (transport, 5xx, its own trouble): retry or give up."""


@dataclass(frozen=True)
class TencentCloud:
    """Signed calls to one Tencent Cloud API 3.0 product (TC3-HMAC-SHA256)."""

    endpoint: str
    secret_id: str
    secret_key: str
    service: str
    version: str
    region: str
    http: httpx.AsyncClient
    clock: Callable[[], float] = time.time

    @property
    def configured(self) -> bool:
        return bool(self.endpoint and self.secret_id and self.secret_key)

    async def call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """``Response`` of the call; ``ProviderError`` when there is none, a dict with
        ``Error`` when Tencent refused."""
        payload = msgspec.json.encode(body)
        url = self.endpoint.rstrip("/") + "/"
        headers = tc3.signed_headers(
            self.secret_id, self.secret_key, service=self.service,
            host=urlsplit(url).netloc, action=action, version=self.version,
            region=self.region, timestamp=int(self.clock()), payload=payload,
        )
        try:
            response = await self.http.post(url, content=payload, headers=headers)
            answer = msgspec.json.decode(response.content, type=dict[str, Any])
        except (httpx.HTTPError, msgspec.DecodeError) as exc:
            raise ProviderError(f"{action}: {type(exc).__name__}") from None
        inner = answer.get("Response")
        if not isinstance(inner, dict):
            raise ProviderError(f"{action}: HTTP {response.status_code} without Response")
        return inner


def _error_code(answer: dict[str, Any]) -> str:
    error = answer.get("Error")
    return str(error.get("Code", "")) if isinstance(error, dict) else ""


# ------------------------------------------------------------------ real-name check


class IdCheck(ABC):
    """A real-name check. (A base class rather than a Protocol: routes name it as a
    dependency, and Litestar checks injected values against the annotation.)"""

    @abstractmethod
    async def verify(self, name: str, id_number: str) -> IdCheckResult: ...


# IdCardVerification's Result: "0" the name goes with the number; "-1" it does not; "-2"
# and "-3" an invalid number or name; "-5" no such number in the ID database; "-4" (the
# database's service), "-6" (its upgrade) and "-7" (today's quota) are its own trouble.
_ID_RESULTS: dict[str, IdCheckResult] = {"0": "match", "-1": "mismatch", "-2": "mismatch",
                                         "-3": "mismatch", "-5": "not_found"}
ID_ATTEMPTS = 3


class TencentIdCheck(IdCheck):
    """Two-element real-name check (二要素核验) by FaceID ``IdCardVerification``."""

    def __init__(self, api: TencentCloud) -> None:
        self._api = api

    async def verify(self, name: str, id_number: str) -> IdCheckResult:
        if not self._api.configured:
            raise unavailable("idcheck", "实名核验服务未配置。")
        last = ""
        # Its own trouble passes: ask again at once, a few times, never answering "match".
        for _ in range(ID_ATTEMPTS):
            try:
                answer = await self._api.call(
                    "IdCardVerification", {"IdCard": id_number, "Name": name}
                )
            except ProviderError as exc:
                last = str(exc)
                continue
            code = _error_code(answer)
            result = _ID_RESULTS.get(str(answer.get("Result", "")))
            if not code and result is not None:
                return result
            last = code or f"Result {answer.get('Result')!r}: {answer.get('Description', '')}"
            if code.startswith(("AuthFailure", "UnauthorizedOperation", "InvalidParameter")):
                break  # our configuration or request: asking again will not help
        log.error("IdCardVerification failed: %s", last)
        raise unavailable("idcheck", "实名核验服务暂时不可用，请稍后再试。")


class UnconfiguredIdCheck(IdCheck):
    async def verify(self, name: str, id_number: str) -> IdCheckResult:
        raise unavailable("idcheck", "实名核验服务未配置。")


# ------------------------------------------------------------------ face check

FaceStatus = Literal["pending", "passed", "failed", "expired"]


@dataclass(frozen=True)
class FaceStart:
    """A started check: ``token`` (Tencent BizToken, WeChat verify_id) and what the client
    does with it: open ``url`` (H5), or hand ``token`` to the mini program's SDK."""

    token: str
    url: str
    sdk: Literal["tencent_faceid", "wechat_facial_verify"]
    reference: str = ""  # our own serial number of the check, where the provider wants it


@dataclass(frozen=True)
class FaceOutcome:
    status: FaceStatus
    id_number: str = ""
    name: str = ""
    similarity: float | None = None
    code: str = ""


class FaceCheck(ABC):
    @abstractmethod
    async def start(
        self, *, id_number: str, name: str, redirect_url: str, openid: str | None
    ) -> FaceStart: ...

    @abstractmethod
    async def result(self, token: str, *, reference: str, id_number: str, name: str,
                     openid: str | None) -> FaceOutcome: ...


def _similarity(raw: object) -> float | None:
    try:
        return float(str(raw))
    except ValueError:
        return None


class TencentFaceId(FaceCheck):
    """FaceID's H5 flow (实名核身鉴权): ``DetectAuth`` with the RuleId of the flow set up in
    the FaceID console gives ``Url`` and ``BizToken``; ``GetDetectInfoEnhanced`` gives the
    outcome (``Text.ErrCode`` 0 is a pass; null while the person has not finished)."""

    def __init__(self, api: TencentCloud, rule_id: str) -> None:
        self._api = api
        self._rule_id = rule_id

    async def _call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        if not (self._api.configured and self._rule_id):
            raise unavailable("face", "人脸核身服务未配置。")
        try:
            return await self._api.call(action, body)
        except ProviderError as exc:
            log.warning("FaceID %s", exc)
            raise unavailable("face", "人脸核身服务暂时不可用，请稍后再试。") from None

    async def start(
        self, *, id_number: str, name: str, redirect_url: str, openid: str | None
    ) -> FaceStart:
        answer = await self._call(
            "DetectAuth",
            {"RuleId": self._rule_id, "IdCard": id_number, "Name": name,
             "RedirectUrl": redirect_url},
        )
        token, url = str(answer.get("BizToken", "")), str(answer.get("Url", ""))
        if _error_code(answer) or not token or not url:
            log.error("DetectAuth refused: %s", _error_code(answer) or "no BizToken")
            raise unavailable("face", "人脸核身服务暂时不可用，请稍后再试。")
        return FaceStart(token=token, url=url, sdk="tencent_faceid")

    async def result(self, token: str, *, reference: str, id_number: str, name: str,
                     openid: str | None) -> FaceOutcome:
        answer = await self._call(
            "GetDetectInfoEnhanced", {"BizToken": token, "RuleId": self._rule_id, "InfoType": "0"}
        )
        code = _error_code(answer)
        if "BizToken" in code and "Expired" in code:
            return FaceOutcome("expired", code=code)
        if code:
            log.error("GetDetectInfoEnhanced refused: %s", code)
            raise unavailable("face", "人脸核身服务暂时不可用，请稍后再试。")
        text = answer.get("Text")
        if not isinstance(text, dict) or text.get("ErrCode") is None:
            return FaceOutcome("pending")
        passed = text.get("ErrCode") == 0
        return FaceOutcome(
            "passed" if passed else "failed",
            id_number=str(text.get("IdCard") or ""),
            name=str(text.get("Name") or ""),
            similarity=_similarity(text.get("Sim")),
            code=str(text.get("ErrCode")),
        )


def cert_hash(id_number: str, name: str) -> str:
    """WeChat's ``cert_hash`` of queryverifyinfo: lower-case hex SHA-256 of
    ``cert_type=<b64>&cert_name=<b64>&cert_no=<b64>`` (each value in standard base64), the
    identity the check was started with, so the answer is bound to it."""

    def b64(value: str) -> str:
        return base64.b64encode(value.encode("utf-8")).decode("ascii")

    text = f"cert_type={b64('IDENTITY_CARD')}&cert_name={b64(name)}&cert_no={b64(id_number)}"
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class WeChatFaceVerification(FaceCheck):
    """WeChat's face verification for government mini programs: ``getverifyid`` gives the
    ``verify_id`` the page passes to ``wx.requestFacialVerify``; ``queryverifyinfo`` gives
    ``verify_ret`` (10000 is a pass). Needs the citizen's openid (a WeChat login)."""

    def __init__(self, base: str, tokens: WeChatTokenSource, http: httpx.AsyncClient) -> None:
        self._base = base.rstrip("/")
        self._tokens = tokens
        self._http = http

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            token = await self._tokens.token()
            response = await self._http.post(
                f"{self._base}{path}", params={"access_token": token}, json=body
            )
            answer = msgspec.json.decode(response.content, type=dict[str, Any])
        except (WeChatDeliveryError, httpx.HTTPError, msgspec.DecodeError) as exc:
            log.warning("WeChat face %s failed: %s", path, type(exc).__name__)
            raise unavailable("face", "人脸核身服务暂时不可用，请稍后再试。") from None
        if answer.get("errcode") in (40001, 42001):
            self._tokens.forget()
        return answer

    async def start(
        self, *, id_number: str, name: str, redirect_url: str, openid: str | None
    ) -> FaceStart:
        if not openid:
            raise DomainError("wechat_login_required", "请在微信小程序中登录后进行人脸核身。")
        out_seq_no = uuid.uuid4().hex
        answer = await self._post(
            "/cityservice/face/identify/getverifyid",
            {"out_seq_no": out_seq_no, "openid": openid,
             "cert_info": {"cert_type": "IDENTITY_CARD", "cert_name": name, "cert_no": id_number}},
        )
        verify_id = str(answer.get("verify_id") or "")
        if answer.get("errcode") or not verify_id:
            log.error("getverifyid errcode %s", answer.get("errcode"))
            raise unavailable("face", "人脸核身服务暂时不可用，请稍后再试。")
        return FaceStart(
            token=verify_id, url="", sdk="wechat_facial_verify", reference=out_seq_no
        )

    async def result(self, token: str, *, reference: str, id_number: str, name: str,
                     openid: str | None) -> FaceOutcome:
        answer = await self._post(
            "/cityservice/face/identify/queryverifyinfo",
            {"verify_id": token, "out_seq_no": reference, "openid": openid or "",
             "cert_hash": cert_hash(id_number, name)},
        )
        errcode = answer.get("errcode") or 0
        if errcode:
            log.error("queryverifyinfo errcode %s", errcode)
            raise unavailable("face", "人脸核身服务暂时不可用，请稍后再试。")
        ret = answer.get("verify_ret")
        if ret is None or ret == 0:
            return FaceOutcome("pending")
        # WeChat checks cert_hash and openid against the check it started (a mismatch is an
        # errcode, not a verify_ret), so a pass is a pass of that person.
        if ret == 10000:
            return FaceOutcome("passed", id_number=id_number, name=name, code=str(ret))
        return FaceOutcome("failed", code=str(ret))


class UnconfiguredFace(FaceCheck):
    async def start(
        self, *, id_number: str, name: str, redirect_url: str, openid: str | None
    ) -> FaceStart:
        raise unavailable("face", "人脸核身服务未配置。")

    async def result(self, token: str, *, reference: str, id_number: str, name: str,
                     openid: str | None) -> FaceOutcome:
        raise unavailable("face", "人脸核身服务未配置。")
