"""Mock WeChat face verification for government mini programs (人脸核身, cityservice):
``POST /wechat/cityservice/face/identify/getverifyid?access_token=`` with ``{out_seq_no,
cert_info: {cert_type, cert_name, cert_no}, openid}`` gives ``{verify_id, expires_in}``;
``POST .../queryverifyinfo?access_token=`` with ``{verify_id, out_seq_no, cert_hash,
openid}`` gives ``{verify_ret}`` (10000 a pass, 90002 the user cancelled, ...). WeChat
checks that ``cert_hash`` and ``openid`` match the check it started: a mismatch is an
errcode, never a verify_ret. ``POST /wechat/face/verify {verify_id, result: pass|cancel}``
plays ``wx.requestFacialVerify`` in the mini program (test helper).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from miniapp_mock.wechat import WeChatState

VERIFY_TTL = timedelta(hours=1)


class CertInfo(msgspec.Struct):
    cert_type: str = ""
    cert_name: str = ""
    cert_no: str = ""


class VerifyIdRequest(msgspec.Struct):
    out_seq_no: str = ""
    cert_info: CertInfo = msgspec.field(default_factory=CertInfo)
    openid: str = ""


class QueryRequest(msgspec.Struct):
    verify_id: str = ""
    out_seq_no: str = ""
    cert_hash: str = ""
    openid: str = ""


class VerifyRequest(msgspec.Struct, forbid_unknown_fields=True):
    verify_id: str
    result: str = "pass"


@dataclass
class _Check:
    out_seq_no: str
    openid: str
    cert_hash: str
    started: datetime
    verify_ret: int = 0


def _hash(cert: CertInfo) -> str:
    def b64(value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    text = "&".join(
        f"{name}={b64(value)}"
        for name, value in (("cert_type", cert.cert_type), ("cert_name", cert.cert_name),
                            ("cert_no", cert.cert_no))
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _checks(wechat: WeChatState) -> dict[str, _Check]:
    return wechat.face_checks


def _token_ok(wechat: WeChatState, access_token: str | None) -> bool:
    expires = wechat.tokens.get(access_token or "")
    return expires is not None and expires > wechat.clock()


def _error(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": errmsg}


@post("/wechat/cityservice/face/identify/getverifyid", status_code=200)
async def getverifyid(
    data: JSONBody[VerifyIdRequest], wechat: NamedDependency[WeChatState],
    access_token: FromQuery[str | None] = None,
) -> dict[str, Any]:
    if not _token_ok(wechat, access_token):
        return _error(40001, "invalid credential")
    cert = data.cert_info
    if cert.cert_type != "IDENTITY_CARD" or not cert.cert_name or len(cert.cert_no) != 18:
        return _error(40003, "invalid cert_info")
    if not 5 <= len(data.out_seq_no) <= 32 or data.openid not in wechat.known_openids:
        return _error(40003, "invalid openid or out_seq_no")
    verify_id = secrets.token_urlsafe(24)
    _checks(wechat)[verify_id] = _Check(data.out_seq_no, data.openid, _hash(cert), wechat.clock())
    return {"errcode": 0, "errmsg": "ok", "verify_id": verify_id,
            "expires_in": int(VERIFY_TTL.total_seconds())}


@post("/wechat/cityservice/face/identify/queryverifyinfo", status_code=200)
async def queryverifyinfo(
    data: JSONBody[QueryRequest], wechat: NamedDependency[WeChatState],
    access_token: FromQuery[str | None] = None,
) -> dict[str, Any]:
    if not _token_ok(wechat, access_token):
        return _error(40001, "invalid credential")
    check = _checks(wechat).get(data.verify_id)
    if check is None:
        return _error(9200001, "verify_id not exist")
    if (
        check.openid != data.openid
        or check.out_seq_no != data.out_seq_no
        or not hmac.compare_digest(check.cert_hash, data.cert_hash)
    ):
        return _error(9200002, "cert_hash, openid or out_seq_no mismatch")
    return {"errcode": 0, "errmsg": "ok", "verify_ret": check.verify_ret}


@post("/wechat/face/verify", status_code=200)
async def facial_verify(
    data: JSONBody[VerifyRequest], wechat: NamedDependency[WeChatState]
) -> dict[str, Any]:
    """Plays wx.requestFacialVerify: the person passes or cancels (test helper)."""
    check = _checks(wechat).get(data.verify_id)
    if check is None or wechat.clock() - check.started >= VERIFY_TTL:
        return {"errMsg": "requestFacialVerify:fail", "errCode": 90100}
    if check.verify_ret == 0:
        check.verify_ret = 10000 if data.result == "pass" else 90002
    return {"errMsg": "requestFacialVerify:ok", "verifyResult": check.verify_ret}


ROUTES = [getverifyid, queryverifyinfo, facial_verify]
