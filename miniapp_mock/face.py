"""Mock face verification (人脸核身), shaped like Tencent Cloud FaceID DetectAuth/GetDetectInfo.

1. The Wangqian server calls ``POST /face/detect-auth {id_number, name, redirect_url}``
   (Bearer key) and gets ``{biz_token, url}``; the token lives 7 minutes.
2. The user's browser opens ``url`` (``GET /face/page?biz_token=``), a small H5 page with
   a pass and a fail button. Pressing one posts to ``/face/page/complete``, which records
   the result once and redirects to ``redirect_url?biz_token=...``.
3. The server fetches the outcome itself with ``POST /face/get-detect-info {biz_token}``
   (Bearer key): ``{status, id_number, name, similarity}``.

The client can only influence the result through the page, as with the real service.
"Pass" yields ``passed`` only if the person is in the mock ID registry under that name;
otherwise the comparison with the (absent) ID photo fails.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, URLEncodedBody
from litestar.response import Redirect

from miniapp_mock._common import Clock, bearer_ok, new_id, normalize_id_number
from miniapp_mock.idcheck import IdRegistryState

TOKEN_TTL = timedelta(minutes=7)
SIMILARITY_PASSED = 93.5
SIMILARITY_FAILED = 41.2

Status = Literal["pending", "passed", "failed", "expired"]


class DetectAuthRequest(msgspec.Struct, forbid_unknown_fields=True):
    id_number: str
    name: str
    redirect_url: str | None = None


class DetectInfoRequest(msgspec.Struct, forbid_unknown_fields=True):
    biz_token: str


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
    similarity: float | None = None
    completed_at: datetime | None = None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _with_token(url: str, biz_token: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != "biz_token"]
    query.append(("biz_token", biz_token))
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class FaceState:
    key: str
    clock: Clock
    public_base_url: str
    api_public_base: str
    registry: IdRegistryState
    sessions: dict[str, _Session] = field(default_factory=dict)

    def start(self, data: DetectAuthRequest) -> tuple[int, dict[str, Any]]:
        redirect_url = data.redirect_url or self.api_public_base
        scheme, netloc = _origin(redirect_url)
        if scheme not in ("http", "https") or not netloc:
            return 400, {"code": "REDIRECT_URL_INVALID", "message": "redirect_url must be absolute"}
        # Like the real service, only redirect back to the configured site (no open redirect).
        if self.api_public_base and (scheme, netloc) != _origin(self.api_public_base):
            return 400, {"code": "REDIRECT_URL_INVALID",
                         "message": "redirect_url is not on the registered site"}
        token = new_id("")
        self.sessions[token] = _Session(
            biz_token=token,
            id_number=normalize_id_number(data.id_number),
            name=data.name.strip(),
            redirect_url=redirect_url,
            created_at=self.clock(),
        )
        url = f"{self.public_base_url.rstrip('/')}/face/page?{urlencode({'biz_token': token})}"
        return 200, {"biz_token": token, "url": url, "request_id": new_id("face-")}

    def expired(self, session: _Session) -> bool:
        return self.clock() - session.created_at >= TOKEN_TTL

    def status_of(self, session: _Session) -> Status:
        if session.status == "pending" and self.expired(session):
            return "expired"
        return session.status

    def complete(self, session: _Session, result: str) -> None:
        # First answer wins; after expiry nothing can be recorded any more.
        if session.status != "pending" or self.expired(session):
            return
        session.completed_at = self.clock()
        if result == "pass" and self.registry.check(session.name, session.id_number) == "match":
            session.status, session.similarity = "passed", SIMILARITY_PASSED
        else:
            session.status, session.similarity = "failed", SIMILARITY_FAILED


def _mask(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail:]


_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>人脸核身（模拟）</title>
<style>
 body {{ font-family: -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif;
        margin: 0; padding: 24px; background: #f5f6f7; color: #222; }}
 .card {{ background: #fff; border-radius: 12px; padding: 20px; max-width: 420px;
         margin: 0 auto; box-shadow: 0 1px 4px rgba(0,0,0,.08); }}
 h1 {{ font-size: 20px; margin: 0 0 12px; }}
 .face {{ width: 160px; height: 160px; border-radius: 50%; margin: 20px auto;
         border: 3px dashed #07c160; display: flex; align-items: center;
         justify-content: center; color: #07c160; }}
 p {{ line-height: 1.6; }}
 .note {{ color: #888; font-size: 13px; }}
 .warn {{ color: #c0392b; font-size: 14px; }}
 button {{ display: block; width: 100%; padding: 14px; margin-top: 12px; font-size: 17px;
          border: 0; border-radius: 8px; }}
 .pass {{ background: #07c160; color: #fff; }}
 .fail {{ background: #eee; color: #c0392b; }}
</style>
</head>
<body>
<div class="card">
<h1>人脸核身</h1>
<p>姓名：{name}<br>身份证号：{id_number}</p>
<div class="face">请正对屏幕</div>
{body}
<p class="note">这是模拟的人脸核身页面，仅用于演示和测试，不会采集任何图像。</p>
</div>
</body>
</html>
"""

_FORM = """{warning}<form method="post" action="page/complete">
<input type="hidden" name="biz_token" value="{token}">
<button class="pass" type="submit" name="result" value="pass">开始人脸核身</button>
<button class="fail" type="submit" name="result" value="fail">模拟核身失败</button>
</form>"""


def _page(session: _Session | None, status: Status | None, registered: bool) -> str:
    if session is None:
        return _PAGE.format(name="-", id_number="-",
                            body='<p class="warn">核身链接无效，请返回重新发起。</p>')
    if status == "pending":
        warning = "" if registered else (
            '<p class="warn">该身份未在模拟身份库中登记，核身将不通过。</p>')
        body = _FORM.format(warning=warning, token=html.escape(session.biz_token))
    elif status == "expired":
        body = '<p class="warn">核身链接已过期，请返回重新发起。</p>'
    else:
        body = f'<p>核身已完成：{"通过" if status == "passed" else "未通过"}。</p>'
    return _PAGE.format(name=html.escape(_mask(session.name, 1, 0)),
                        id_number=html.escape(_mask(session.id_number, 4, 4)), body=body)


def _problem(status: int, code: str, message: str) -> Response[dict[str, Any]]:
    return Response({"code": code, "message": message}, status_code=status)


@post("/face/detect-auth", status_code=200)
async def face_detect_auth(request: Request, data: JSONBody[DetectAuthRequest],
                           face: NamedDependency[FaceState]) -> Response[dict[str, Any]]:
    if not bearer_ok(request, face.key):
        return _problem(401, "UNAUTHORIZED", "invalid api key")
    status, answer = face.start(data)
    return Response(answer, status_code=status)


@post("/face/get-detect-info", status_code=200)
async def face_get_detect_info(request: Request, data: JSONBody[DetectInfoRequest],
                               face: NamedDependency[FaceState]) -> Response[dict[str, Any]]:
    if not bearer_ok(request, face.key):
        return _problem(401, "UNAUTHORIZED", "invalid api key")
    session = face.sessions.get(data.biz_token)
    if session is None:
        return _problem(400, "BIZ_TOKEN_INVALID", "unknown biz_token")
    return Response({
        "status": face.status_of(session),
        "id_number": session.id_number,
        "name": session.name,
        "similarity": session.similarity,
    })


@get("/face/page", media_type=MediaType.HTML)
async def face_page(biz_token: FromQuery[str],
                    face: NamedDependency[FaceState]) -> Response[str]:
    session = face.sessions.get(biz_token)
    if session is None:
        return Response(_page(None, None, False), media_type=MediaType.HTML, status_code=404)
    registered = face.registry.check(session.name, session.id_number) == "match"
    return Response(_page(session, face.status_of(session), registered),
                    media_type=MediaType.HTML)


@post("/face/page/complete")
async def face_page_complete(
    data: URLEncodedBody[CompleteForm],
    face: NamedDependency[FaceState],
) -> Response[str] | Redirect:
    session = face.sessions.get(data.biz_token)
    if session is None:
        return Response(_page(None, None, False), media_type=MediaType.HTML, status_code=404)
    face.complete(session, data.result)
    return Redirect(_with_token(session.redirect_url, session.biz_token), status_code=303)


ROUTES = [face_detect_auth, face_get_detect_info, face_page, face_page_complete]
