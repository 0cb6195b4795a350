"""Authentication: Litestar middleware that turns a bearer token into the ``Principal`` on
``request.user``; every path not listed in ``ANONYMOUS_PATHS`` needs a live session.

What a principal may do is then decided by the small checks in ``api.identity.guards``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.core.clock import Clock
from api.core.errors import DomainError
from api.core.problems import ProblemError, send_problem
from api.db.engine import Database
from api.identity import sessions
from api.identity.principal import Principal
from api.identity.sessions import SessionPolicy

# Paths anyone may call without logging in: probes, the API docs, what the public sees,
# logging in itself, the bank's signed webhooks, and (demo only) the mocks and H5 pages.
ANONYMOUS_PATHS = (
    r"^/healthz$",
    r"^/readyz$",
    r"^/api/docs",
    r"^/api/v1/public/",
    r"^/api/v1/auth/(wechat|sms/send|sms/verify|face-return)$",
    r"^/api/v1/webhooks/",
    r"^/mock/",
    r"^/miniapp",
)


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class BearerAuthentication(AbstractAuthenticationMiddleware):
    """Looks the token up (a reader session); restarts the session's idle timer at most
    once a minute, in a short writer transaction of its own."""

    def __init__(
        self, app: ASGIApp, *, database: Database, clock: Clock, policy: SessionPolicy
    ) -> None:
        super().__init__(app, exclude=list(ANONYMOUS_PATHS))
        self.database = database
        self.clock = clock
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A refused login is answered here, as a problem: raised out of the middleware, it
        would pass the access log as a 500 (and without its request id) before Litestar
        turned it into the 401."""
        if scope["type"] == "http" and self.exclude and self.exclude.search(scope["path"]):
            # Anonymous paths (public reads, webhooks) skip the watch on every message sent.
            await self.app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await super().__call__(scope, receive, watching)
        except DomainError as refused:
            if started:
                raise
            await send_problem(watching, ProblemError.of(refused), scope)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = bearer_token(connection)
        if token is None:
            raise DomainError("not_authenticated", "请先登录。")
        now = self.clock.now()
        async with self.database.reader() as session:
            principal = await sessions.authenticate(session, self.policy, token=token, now=now)
        if principal.touch_due:
            async with self.database.writer() as session, session.begin():
                await sessions.touch_session(session, principal.session_id, now=now)
        return AuthenticationResult(user=principal, auth=token)


def idempotency_caller(scope: Any) -> str | None:
    """Whose an ``Idempotency-Key`` is: the authenticated principal (the same person under
    a new login replays; another person, or nobody, does not), None when anonymous."""
    principal = scope.get("user")
    if not isinstance(principal, Principal):
        return None
    return f"{principal.kind.value}:{principal.citizen_id or principal.staff_id}"


def provide_principal(request: Request[Principal, Any, Any]) -> Principal:
    """The ``principal`` dependency of handlers behind the middleware."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):  # an anonymous path's handler asked for it
        raise DomainError("not_authenticated", "请先登录。")
    return principal
