"""RFC 9457 problem+json errors with a stable machine ``code`` and a Chinese ``detail``.

Services raise ``ProblemError``; the handlers here turn it, Litestar's own HTTP errors
and anything unexpected into one shape. A 500 is always a bug and is logged as one.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://wangqian.example/problems/"

log = logging.getLogger("wangqian.errors")


class ProblemError(Exception):
    """A refusal the client can act on. ``code`` is stable; ``detail`` is for people."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or code.replace("_", " ")
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def not_found(cls, what: str) -> ProblemError:
        return cls(404, "not_found", f"未找到该{what}。", resource=what)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def problem_response(problem: ProblemError, request: Request[Any, Any, Any]) -> Response[Any]:
    headers = dict(problem.headers)
    request_id = request.scope.get("state", {}).get("request_id")
    body = problem.body(instance=request.url.path)
    if request_id:
        body["request_id"] = request_id
    return Response(
        content=body, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _validation_problem(exc: ValidationException) -> ProblemError:
    errors = exc.extra if isinstance(exc.extra, list) else []
    detail = exc.detail or ""
    sources = {e.get("source") for e in errors if isinstance(e, dict)}
    if sources & {"query", "path", "header", "cookie"} and "body" not in sources:
        code, message = "invalid_parameter", "请求参数不符合要求，请检查后重试。"
    elif "unknown field" in detail.lower() or any(
        "unknown field" in str(e).lower() for e in errors
    ):
        code, message = "unknown_field", "请求中包含不被接受的字段。"
    elif "JSON" in detail or "malformed" in detail.lower():
        code, message = "malformed_json", "请求体不是合法的 JSON。"
    else:
        code, message = "invalid_body", "请求内容不符合要求，请检查后重试。"
    return ProblemError(422, code, message, errors=[_plain(e) for e in errors])


def _plain(error: Any) -> Any:
    return error if isinstance(error, dict | str | int | float) else str(error)


_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求无效。"),
    401: ("not_authenticated", "请先登录。"),
    403: ("forbidden", "没有权限进行此操作。"),
    404: ("not_found", "未找到请求的资源。"),
    405: ("method_not_allowed", "不支持该请求方法。"),
    413: ("payload_too_large", "请求内容过大。"),
    415: ("unsupported_media_type", "不支持的内容类型，请使用 JSON。"),
    429: ("rate_limited", "请求过于频繁，请稍后再试。"),
}


def handle_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[Any]:
    return problem_response(exc, request)


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    return problem_response(_validation_problem(exc), request)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        return handle_unexpected(request, exc)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", "请求无法处理。"))
    headers = dict(exc.headers or {})
    return problem_response(ProblemError(exc.status_code, code, message, headers=headers), request)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = ProblemError(500, "internal_error", "服务器内部错误，我们已记录此问题，请稍后重试。")
    return problem_response(problem, request)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ProblemError: handle_problem,
    ValidationException: handle_validation,
    NotFoundException: handle_http,
    MethodNotAllowedException: handle_http,
    NotAuthorizedException: handle_http,
    PermissionDeniedException: handle_http,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_MEDIA_TYPE", "MediaType", "ProblemError"]
