"""Identity routes: login (WeChat, phone + SMS code), the caller's profile, real-name and
face checks, TOTP enrollment, and company admins managing their staff.

The authentication middleware puts the caller's ``Principal`` on the request; guards
(``api.identity.guards``) refuse the wrong kind of user; handlers receive it as the
``principal`` dependency.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, get, post, put
from litestar.datastructures import CacheControlHeader, State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import Clock
from api.core.ids import parse_id
from api.core.keys import ServiceKeys
from api.core.ratelimit import RateLimiter
from api.core.validators import normalize_phone
from api.db.engine import Database
from api.identity import (
    codes,
    consent,
    profile,
    schemas,
    sessions,
    staff,
    subscriptions,
    verification,
)
from api.identity.clients import WeChatClient
from api.identity.face_providers import FaceCheck, IdCheck
from api.identity.guards import (
    citizens_only,
    company_admins_only,
    logged_in,
    regulators_only,
    staff_only,
)
from api.identity.principal import Principal
from api.identity.sessions import SessionPolicy
from api.settings import Settings
from notifications.sms import SmsChannel
from notifications.wechat_templates import WeChatTemplate


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
# Login codes one IP address may have sent, per hour (anyone may ask for any phone).
ANONYMOUS_SENDS_PER_IP_HOUR = 30

# Where the face provider's H5 page sends the browser back. With the demo's H5 mini program
# mounted (mocks enabled) it leads straight back to its face page, which asks the API for
# the result by itself; a city's own mini program returns from its web-view by itself.
FACE_RETURN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>人脸核身</title></head>
<body style="font-family: sans-serif; padding: 24px; color: #1f2329">
<p>人脸核身已结束，请返回小程序或应用查看结果。</p>
</body></html>
"""
FACE_RETURN_TO_MINIAPP = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="1;url=/miniapp/#/face">
<title>人脸核身</title></head>
<body style="font-family: sans-serif; padding: 24px; color: #1f2329">
<p>人脸核身已结束，正在返回网签页面查看结果…</p>
<p><a href="/miniapp/#/face" style="display: inline-block; min-height: 44px; line-height: 44px;
 color: #067a3e">返回网签</a></p>
<script>location.replace("/miniapp/#/face");</script>
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
        wechat: NamedDependency[WeChatClient],
        session_policy: NamedDependency[SessionPolicy],
        limiter: NamedDependency[RateLimiter],
        settings: NamedDependency[Settings],
    ) -> schemas.LoginAnswer:
        await _limit_auth(request, limiter, settings)
        return await sessions.login_with_wechat(
            db, wechat, session_policy, code=data.code.strip(), now=clock.now()
        )

    @post("/sms/send", status_code=200, summary="发送短信验证码 (same answer for any phone)")
    async def sms_send(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[schemas.SmsSend],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        sms: NamedDependency[SmsChannel],
        limiter: NamedDependency[RateLimiter],
        settings: NamedDependency[Settings],
    ) -> schemas.CodeSent:
        phone = normalize_phone(data.phone)
        await _limit_auth(request, limiter, settings, phone)
        # Anonymous sends have a budget of their own per address, besides the login
        # purpose's own quota per phone (codes.issue_code): neither touches signing codes.
        await limiter.hit(
            "sms-send-ip", _ip(request), limit=ANONYMOUS_SENDS_PER_IP_HOUR, window_seconds=3600
        )
        _, sent = await codes.issue_code(db, keys, sms, phone=phone, now=clock.now())
        return sent

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
        phone = normalize_phone(data.phone)
        await _limit_auth(request, limiter, settings, phone)
        return await sessions.login_with_phone(
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
        await sessions.logout(db, principal, now=clock.now())

    @get("/face-return", media_type=MediaType.HTML, include_in_schema=False)
    async def face_return(self, settings: NamedDependency[Settings]) -> str:
        """Where the face provider sends the browser back; it shows no result on purpose
        (the app asks the API, which asks the provider) and, in the demo, leads back to the
        H5 face page, which asks for the result by itself."""
        return FACE_RETURN_TO_MINIAPP if settings.mocks_enabled else FACE_RETURN_PAGE


class MeController(Controller):
    path = "/api/v1/me"
    tags = ("identity",)
    guards = [logged_in]  # noqa: RUF012

    @get("", summary="当前用户 (profile and identity level)")
    async def me(
        self, db: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> schemas.Me:
        return await profile.profile(db, principal)

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
        phone = normalize_phone(data.phone)
        await _limit_auth(request, limiter, settings, phone)
        return await sessions.bind_phone(
            db, keys, principal, phone=phone, code=data.code, now=clock.now()
        )

    @get("/pi-notice", guards=[citizens_only], summary="个人信息收集与使用告知 (to consent to)")
    async def pi_notice(self) -> schemas.PiNotice:
        return consent.pi_notice()

    @post(
        "/pi-consent",
        status_code=200,
        guards=[citizens_only],
        summary="同意个人信息告知 (separate consent before the ID number and face)",
    )
    async def pi_consent(
        self,
        data: JSONBody[schemas.PiConsent],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.Me:
        return await consent.give_pi_consent(db, principal, version=data.version, now=clock.now())

    @post("/real-name", status_code=200, guards=[citizens_only], summary="实名认证")
    async def real_name(
        self,
        data: JSONBody[schemas.RealName],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        idcheck: NamedDependency[IdCheck],
        principal: NamedDependency[Principal],
        limiter: NamedDependency[RateLimiter],
    ) -> schemas.Me:
        await limiter.hit("real-name", str(principal.citizen_id), limit=10, window_seconds=3600)
        return await verification.submit_real_name(
            db,
            keys,
            idcheck,
            principal,
            name=data.name,
            id_number=data.id_number,
            id_type=data.id_type,
            now=clock.now(),
        )

    @get("/wechat-subscriptions", guards=[citizens_only], summary="微信订阅消息 (what is allowed)")
    async def wechat_subscriptions(
        self,
        db: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        wechat_templates: NamedDependency[dict[str, WeChatTemplate]],
    ) -> schemas.Subscriptions:
        return await subscriptions.wechat_subscriptions(db, principal, wechat_templates)

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
        wechat_templates: NamedDependency[dict[str, WeChatTemplate]],
    ) -> schemas.Subscriptions:
        await limiter.hit("subscriptions", str(principal.citizen_id), limit=30, window_seconds=3600)
        return await subscriptions.record_wechat_subscriptions(
            db, principal, wechat_templates, results=data.results, now=clock.now()
        )

    # The provider's one-time BizToken is in the answer.
    @post(
        "/face-sessions",
        guards=[citizens_only],
        cache_control=NO_STORE,
        summary="发起人脸核身",
    )
    async def start_face(
        self,
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        keys: NamedDependency[ServiceKeys],
        face: NamedDependency[FaceCheck],
        principal: NamedDependency[Principal],
        limiter: NamedDependency[RateLimiter],
        settings: NamedDependency[Settings],
    ) -> schemas.FaceSessionAnswer:
        await limiter.hit("face", str(principal.citizen_id), limit=10, window_seconds=3600)
        return await verification.start_face_session(
            db,
            keys,
            face,
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
        face: NamedDependency[FaceCheck],
        principal: NamedDependency[Principal],
    ) -> schemas.FaceSessionAnswer:
        database: Database = state.database
        # A GET that may record the outcome: it needs a writer session of its own.
        async with database.writer() as session, session.begin():
            return await verification.face_session_result(
                session,
                keys,
                face,
                principal,
                face_session_id=parse_id(face_session_id, what="人脸核身记录"),
                now=clock.now(),
            )

    # The new secret is in the answer: never cached, never kept for an idempotent replay.
    @post(
        "/totp",
        status_code=200,
        guards=[staff_only],
        cache_control=NO_STORE,
        summary="绑定身份验证器 (TOTP)",
    )
    async def totp_enroll(
        self,
        db: NamedDependency[AsyncSession],
        keys: NamedDependency[ServiceKeys],
        principal: NamedDependency[Principal],
    ) -> schemas.TotpEnrollment:
        return await staff.start_totp(db, keys, principal)

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
        return await staff.confirm_totp(db, keys, principal, code=data.code, now=clock.now())


class StaffController(Controller):
    path = "/api/v1/staff"
    tags = ("staff",)
    guards = [company_admins_only]  # noqa: RUF012

    @get("/members", summary="本公司工作人员")
    async def list_members(
        self, db: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> schemas.StaffList:
        return await staff.list_members(db, principal)

    @post("/members", summary="添加工作人员 (sales agent or seal keeper)")
    async def add_member(
        self,
        data: JSONBody[schemas.NewStaffMember],
        db: NamedDependency[AsyncSession],
        keys: NamedDependency[ServiceKeys],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.StaffMemberAnswer:
        return await staff.add_member(db, keys, principal, data, now=clock.now())

    @post("/members/{staff_id:str}/disable", status_code=200, summary="停用工作人员")
    async def disable_member(
        self,
        staff_id: FromPath[str],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.StaffMemberAnswer:
        return await staff.disable_member(
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
        return await staff.assign_projects(
            db, principal, parse_id(staff_id, what="工作人员"), data.project_ids
        )


class StaffReviewController(Controller):
    """入网审核: regulators decide on the staff company admins add."""

    path = "/api/v1/staff"
    tags = ("staff",)
    guards = [regulators_only]  # noqa: RUF012

    @get("/pending", summary="待审核工作人员 (regulators: every company)")
    async def pending(self, db: NamedDependency[AsyncSession]) -> schemas.StaffList:
        return await staff.pending_members(db)

    async def _review(
        self, db: AsyncSession, clock: Clock, principal: Principal, raw: str, reason: str, ok: bool
    ) -> schemas.StaffMemberAnswer:
        return await staff.review_member(
            db,
            principal,
            parse_id(raw, what="工作人员"),
            approve=ok,
            reason=reason,
            now=clock.now(),
        )

    @post("/members/{staff_id:str}/approve", status_code=200, summary="审核通过工作人员")
    async def approve(
        self,
        staff_id: FromPath[str],
        data: JSONBody[schemas.StaffReview],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.StaffMemberAnswer:
        return await self._review(db, clock, principal, staff_id, data.reason, True)

    @post("/members/{staff_id:str}/reject", status_code=200, summary="驳回工作人员 (with a reason)")
    async def reject(
        self,
        staff_id: FromPath[str],
        data: JSONBody[schemas.StaffReview],
        db: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> schemas.StaffMemberAnswer:
        return await self._review(db, clock, principal, staff_id, data.reason, False)


ROUTES = [AuthController, MeController, StaffController, StaffReviewController]
