"""Identity routes: login (WeChat, phone + SMS code), the caller's profile, real-name and
face checks, TOTP enrollment, and company admins managing their staff.

Guards resolve the bearer token into a ``Principal`` (kept on the connection state) and
refuse the wrong kind of user; handlers receive it as the ``principal`` dependency.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, get, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader, State
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock
from api.core.errors import DomainError
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.core.ratelimit import RateLimiter
from api.db.engine import Database
from api.identity import schemas, service
from api.identity.clients import IdentityClients
from api.identity.models import PrincipalKind, StaffRole
from api.identity.service import Principal, SessionPolicy
from api.settings import Settings

# ------------------------------------------------------------------ guards


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def resolve_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    cached = connection.scope.get("state", {}).get("principal")
    if isinstance(cached, Principal):
        return cached
    token = _bearer(connection)
    if token is None:
        raise DomainError("not_authenticated", "请先登录。")
    state = connection.app.state
    database: Database = state.database
    clock: Clock = state.clock
    now = clock.now()
    async with database.reader() as session:
        principal = await service.authenticate(session, state.session_policy, token=token, now=now)
    if principal.touch_due:
        async with database.writer() as session, session.begin():
            await service.touch_session(session, principal.session_id, now=now)
    connection.scope.setdefault("state", {})["principal"] = principal
    return principal


async def logged_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    await resolve_principal(connection)


async def citizens_only(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    if (await resolve_principal(connection)).kind is not PrincipalKind.citizen:
        raise DomainError("citizen_only", "仅限个人用户使用。")


async def staff_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if (await resolve_principal(connection)).kind is not PrincipalKind.staff:
        raise DomainError("staff_only", "仅限工作人员使用。")


def staff_roles(*roles: StaffRole) -> Any:
    """A guard letting only staff with one of ``roles`` through."""
    allowed = frozenset(roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await resolve_principal(connection)
        if principal.kind is not PrincipalKind.staff:
            raise DomainError("staff_only", "仅限工作人员使用。")
        if principal.role not in allowed:
            raise DomainError(
                "role_forbidden",
                "当前角色无权进行此操作。",
                required_roles=sorted(r.value for r in allowed),
            )

    return guard


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):  # a handler without a login guard asked for it
        raise DomainError("not_authenticated", "请先登录。")
    return principal


def _ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def _limit_auth(
    request: Request[Any, Any, Any],
    limiter: RateLimiter,
    settings: Settings,
    phone: str | None = None,
) -> None:
    await limiter.hit(
        "auth-ip", _ip(request), limit=settings.auth_ip_limit_per_minute, window_seconds=60
    )
    if phone is not None:
        await limiter.hit(
            "auth-phone", phone, limit=settings.auth_phone_limit_per_hour, window_seconds=3600
        )


NO_STORE = CacheControlHeader(no_store=True)

FACE_RETURN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>人脸核身</title></head>
<body style="font-family: sans-serif; padding: 24px">
<p>人脸核身已结束，请返回小程序或应用查看结果。</p>
</body></html>
"""


# ------------------------------------------------------------------ controllers


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ("identity",)

    # Answers carrying a bearer token are never cached, nor kept by the idempotency store.
    @post(
        "/wechat",
        status_code=200,
        cache_control=NO_STORE,
        summary="微信登录 (WeChat mini program login by code)",
    )
    async def wechat(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[schemas.WeChatLogin],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        identity_clients: NamedDependency[IdentityClients],
        session_policy: NamedDependency[SessionPolicy],
        limiter: NamedDependency[RateLimiter],
        settings: NamedDependency[Settings],
    ) -> schemas.LoginAnswer:
        await _limit_auth(request, limiter, settings)
        return await service.login_with_wechat(
            db, identity_clients.wechat, session_policy, code=data.code.strip(), now=clock.now()
        )

    @post("/sms/send", status_code=200, summary="发送短信验证码 (same answer for any phone)")
    async def sms_send(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[schemas.SmsSend],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        identity_clients: NamedDependency[IdentityClients],
        limiter: NamedDependency[RateLimiter],
        settings: NamedDependency[Settings],
    ) -> schemas.CodeSent:
        phone = service.normalize_phone(data.phone)
        await _limit_auth(request, limiter, settings, phone)
        return await service.send_code(db, keys, identity_clients.sms, phone=phone, now=clock.now())

    @post(
        "/sms/verify",
        status_code=200,
        cache_control=NO_STORE,
        summary="短信验证码登录 (citizen or staff)",
    )
    async def sms_verify(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[schemas.SmsVerify],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        session_policy: NamedDependency[SessionPolicy],
        limiter: NamedDependency[RateLimiter],
        settings: NamedDependency[Settings],
    ) -> schemas.LoginAnswer:
        phone = service.normalize_phone(data.phone)
        await _limit_auth(request, limiter, settings, phone)
        return await service.login_with_phone(
            db,
            keys,
            session_policy,
            phone=phone,
            code=data.code,
            totp_code=data.totp_code,
            kind=data.kind,
            now=clock.now(),
        )

    @post("/logout", status_code=204, guards=[logged_in], summary="退出登录")
    async def logout(
        self,
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> None:
        await service.logout(db, principal, now=clock.now())

    @get("/face-return", media_type=MediaType.HTML, include_in_schema=False)
    async def face_return(self) -> str:
        """Where the face provider sends the browser back; it shows no result on purpose
        (the app asks the API, which asks the provider)."""
        return FACE_RETURN_PAGE


class MeController(Controller):
    path = "/api/v1/me"
    tags = ("identity",)
    guards = [logged_in]  # noqa: RUF012

    @get("", summary="当前用户 (profile and identity level)")
    async def me(
        self, db: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> schemas.Me:
        return await service.profile(db, principal)

    @post("/phone", status_code=200, guards=[citizens_only], summary="绑定手机号 (WeChat users)")
    async def bind_phone(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[schemas.BindPhone],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
        limiter: NamedDependency[RateLimiter],
        settings: NamedDependency[Settings],
    ) -> schemas.Me:
        phone = service.normalize_phone(data.phone)
        await _limit_auth(request, limiter, settings, phone)
        return await service.bind_phone(
            db, keys, principal, phone=phone, code=data.code, now=clock.now()
        )

    @post("/real-name", status_code=200, guards=[citizens_only], summary="实名认证")
    async def real_name(
        self,
        data: JSONBody[schemas.RealName],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        identity_clients: NamedDependency[IdentityClients],
        principal: NamedDependency[Principal],
        limiter: NamedDependency[RateLimiter],
    ) -> schemas.Me:
        await limiter.hit("real-name", str(principal.citizen_id), limit=10, window_seconds=3600)
        return await service.submit_real_name(
            db,
            keys,
            identity_clients.idcheck,
            principal,
            name=data.name,
            id_number=data.id_number,
            now=clock.now(),
        )

    @get("/wechat-subscriptions", guards=[citizens_only], summary="微信订阅消息 (what is allowed)")
    async def wechat_subscriptions(
        self, db: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> schemas.Subscriptions:
        return await service.wechat_subscriptions(db, principal)

    @post(
        "/wechat-subscriptions",
        status_code=200,
        guards=[citizens_only],
        summary="记录订阅消息授权 (what wx.requestSubscribeMessage answered)",
    )
    async def record_wechat_subscriptions(
        self,
        data: JSONBody[schemas.SubscriptionResults],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
        limiter: NamedDependency[RateLimiter],
    ) -> schemas.Subscriptions:
        await limiter.hit("subscriptions", str(principal.citizen_id), limit=30, window_seconds=3600)
        return await service.record_wechat_subscriptions(
            db, principal, results=data.results, now=clock.now()
        )

    @post("/face-sessions", guards=[citizens_only], summary="发起人脸核身")
    async def start_face(
        self,
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        identity_clients: NamedDependency[IdentityClients],
        principal: NamedDependency[Principal],
        limiter: NamedDependency[RateLimiter],
        settings: NamedDependency[Settings],
    ) -> schemas.FaceSessionAnswer:
        await limiter.hit("face", str(principal.citizen_id), limit=10, window_seconds=3600)
        return await service.start_face_session(
            db,
            keys,
            identity_clients.face,
            principal,
            redirect_url=settings.public_base_url.rstrip("/") + "/api/v1/auth/face-return",
            now=clock.now(),
        )

    @get(
        "/face-sessions/{face_session_id:str}",
        guards=[citizens_only],
        summary="人脸核身结果 (fetched from the provider by the server)",
    )
    async def face_result(
        self,
        face_session_id: FromPath[str],
        state: State,
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        identity_clients: NamedDependency[IdentityClients],
        principal: NamedDependency[Principal],
    ) -> schemas.FaceSessionAnswer:
        database: Database = state.database
        # A GET that may record the outcome: it needs a writer session of its own.
        async with database.writer() as session, session.begin():
            return await service.face_session_result(
                session,
                keys,
                identity_clients.face,
                principal,
                face_session_id=parse_id(face_session_id, what="人脸核身记录"),
                now=clock.now(),
            )

    @post("/totp", status_code=200, guards=[staff_only], summary="绑定身份验证器 (TOTP)")
    async def totp_enroll(
        self,
        db: NamedDependency[AsyncSession],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
    ) -> schemas.TotpEnrollment:
        return await service.start_totp(db, keys, principal)

    @post("/totp/confirm", status_code=200, guards=[staff_only], summary="确认身份验证器")
    async def totp_confirm(
        self,
        data: JSONBody[schemas.TotpConfirm],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
        limiter: NamedDependency[RateLimiter],
    ) -> schemas.TotpEnabled:
        await limiter.hit("totp", str(principal.staff_id), limit=10, window_seconds=600)
        return await service.confirm_totp(db, keys, principal, code=data.code, now=clock.now())


class StaffController(Controller):
    path = "/api/v1/staff"
    tags = ("staff",)
    guards = [staff_roles(StaffRole.company_admin)]  # noqa: RUF012

    @get("/members", summary="本公司工作人员")
    async def list_members(
        self, db: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> schemas.StaffList:
        return await service.list_members(db, principal)

    @post("/members", summary="添加工作人员 (sales agent or seal keeper)")
    async def add_member(
        self,
        data: JSONBody[schemas.NewStaffMember],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.StaffMemberAnswer:
        return await service.add_member(db, principal, data, now=clock.now())

    @post("/members/{staff_id:str}/disable", status_code=200, summary="停用工作人员")
    async def disable_member(
        self,
        staff_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.StaffMemberAnswer:
        return await service.disable_member(
            db, principal, parse_id(staff_id, what="工作人员"), now=clock.now()
        )

    @put("/members/{staff_id:str}/projects", summary="分配销售项目")
    async def assign_projects(
        self,
        staff_id: FromPath[str],
        data: JSONBody[schemas.StaffProjects],
        db: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
    ) -> schemas.StaffMemberAnswer:
        return await service.assign_projects(
            db, principal, parse_id(staff_id, what="工作人员"), data.project_ids
        )


ROUTES = [AuthController, MeController, StaffController]
