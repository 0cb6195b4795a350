"""Refuses request paths no route can hold before anything else reads them.

A NUL byte in a path (``/miniapp/%00``) reaches the static file server as a file name the
operating system refuses (``ValueError: embedded null byte``) and PostgreSQL refuses in
text: it is a client's error, answered 400 in problem+json without touching either.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Receive, Scope, Send

from api.core.errors import DomainError
from api.core.problems import ProblemError, send_problem


class PathGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "\x00" in scope.get("path", ""):
            refused = DomainError("bad_request", "请求路径无效。")
            await send_problem(send, ProblemError.of(refused), scope)
            return
        await self.app(scope, receive, send)
