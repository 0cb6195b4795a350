"""Logins and sessions: WeChat and phone + SMS code logins, opaque bearer tokens stored
hashed with idle and absolute expiry, logout, and binding a phone to a WeChat account.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import commit_and_raise
from api.identity import schemas
from api.identity.clients import WeChatClient
from api.identity.codes import verify_code
from api.identity.models import (
    AuthSession,
    Citizen,
    PrincipalKind,
    StaffApproval,
    StaffMember,
)
from api.identity.principal import Principal
from api.identity.profile import caller_citizen, profile, set_citizen_phone
from api.identity.staff import check_totp

TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_session(
    session: AsyncSession,
    policy: SessionPolicy,
    *,
    kind: PrincipalKind,
    now: datetime,
    citizen_id: uuid.UUID | None = None,
    staff_id: uuid.UUID | None = None,
    phone_bound: bool = True,
) -> schemas.LoginAnswer:
    token = secrets.token_urlsafe(32)
    row = AuthSession(
        token_hash=token_hash(token),
        kind=kind,
        citizen_id=citizen_id,
        staff_id=staff_id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.absolute,
    )
    session.add(row)
    await session.flush()
    return schemas.LoginAnswer(
        token=token,
        kind=kind,
        expires_at=row.expires_at,
        idle_minutes=int(policy.idle.total_seconds() // 60),
        phone_bound=phone_bound,
    )


async def authenticate(
    session: AsyncSession, policy: SessionPolicy, *, token: str, now: datetime
) -> Principal:
    """The principal behind a bearer token (read only; see ``touch_session``)."""
    row = await session.scalar(
        select(AuthSession).where(AuthSession.token_hash == token_hash(token))
    )
    if row is None or row.revoked_at is not None:
        raise DomainError("session_invalid", "登录已失效，请重新登录。")
    if now >= row.expires_at or now >= row.last_seen_at + policy.idle:
        raise DomainError("session_expired", "登录已过期，请重新登录。")
    principal = Principal(kind=row.kind, session_id=row.id, citizen_id=row.citizen_id)
    if row.kind is PrincipalKind.staff:
        staff = await session.get(StaffMember, row.staff_id)
        if (
            staff is None
            or staff.disabled_at is not None
            or staff.approval is not StaffApproval.approved
        ):
            raise DomainError("session_invalid", "登录已失效，请重新登录。")
        principal = replace(
            principal,
            staff_id=staff.id,
            role=staff.role,
            company_id=staff.company_id,
            totp_enabled=staff.totp_secret_encrypted is not None,
        )
    return replace(principal, touch_due=now - row.last_seen_at >= TOUCH_EVERY)


async def touch_session(session: AsyncSession, session_id: uuid.UUID, *, now: datetime) -> None:
    """Restart the idle timer (done at most once a minute, in its own short transaction)."""
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.last_seen_at < now)
        .values(last_seen_at=now)
    )


async def logout(session: AsyncSession, principal: Principal, *, now: datetime) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == principal.session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def login_with_phone(
    session: AsyncSession,
    keys: ServiceKeys,
    policy: SessionPolicy,
    *,
    phone: str,
    code: str,
    now: datetime,
    totp_code: str | None = None,
    kind: PrincipalKind | None = None,
) -> schemas.LoginAnswer:
    await verify_code(session, keys, phone=phone, code=code, now=now)
    # Only now, with the phone proven, do we look at which accounts it has.
    staff = None
    if kind is not PrincipalKind.citizen:
        staff = await session.scalar(
            select(StaffMember).where(StaffMember.phone_index == keys.phone_index(phone))
        )
        if staff is not None and staff.phone_confirmed_at is None:
            if kind is PrincipalKind.staff:
                # The phone's owner, proven by this code, asks for the staff account: that
                # is the confirmation (kept even if approval still waits, below).
                staff.phone_confirmed_at = now
            else:
                # A company admin typed this phone; until its owner accepts, it logs in as
                # the citizen it belongs to, never as that company's staff.
                staff = None
        if kind is PrincipalKind.staff and staff is None:
            await commit_and_raise(session, DomainError("not_staff", "该手机号不是工作人员账号。"))
    if staff is not None:
        if staff.disabled_at is not None:
            await commit_and_raise(
                session, DomainError("staff_disabled", "该工作人员账号已停用。")
            )
        # 入网审核: no session at all before a regulator approves, so no route can forget
        # to check; the code is spent (committed) like any proven one.
        if staff.approval is StaffApproval.pending:
            await commit_and_raise(
                session,
                DomainError(
                    "staff_pending", "该工作人员账号正在等待主管部门审核，审核通过后方可登录。"
                ),
            )
        if staff.approval is StaffApproval.rejected:
            await commit_and_raise(
                session,
                DomainError(
                    "staff_rejected",
                    "该工作人员账号未通过主管部门审核，请联系企业管理员。",
                    reason=staff.review_reason,
                ),
            )
        # Seal keepers and regulators enroll TOTP; once anyone has, every login needs it.
        if staff.totp_secret_encrypted:
            if not totp_code:
                await commit_and_raise(
                    session,
                    DomainError("totp_required", "请输入身份验证器中的动态口令。"),
                )
            await check_totp(session, keys, staff, totp_code, now)
        return await create_session(
            session, policy, kind=PrincipalKind.staff, staff_id=staff.id, now=now
        )
    citizen = await session.scalar(
        select(Citizen).where(Citizen.phone_index == keys.phone_index(phone))
    )
    if citizen is None:
        citizen = Citizen(created_at=now)
        set_citizen_phone(keys, citizen, phone)
        session.add(citizen)
        await session.flush()
    return await create_session(
        session, policy, kind=PrincipalKind.citizen, citizen_id=citizen.id, now=now
    )


async def login_with_wechat(
    session: AsyncSession, wechat: WeChatClient, policy: SessionPolicy, *, code: str, now: datetime
) -> schemas.LoginAnswer:
    identity = await wechat.code2session(code)
    citizen = await session.scalar(select(Citizen).where(Citizen.wechat_openid == identity.openid))
    if citizen is None:
        citizen = Citizen(
            wechat_openid=identity.openid, wechat_unionid=identity.unionid or None, created_at=now
        )
        session.add(citizen)
        await session.flush()
    return await create_session(
        session,
        policy,
        kind=PrincipalKind.citizen,
        citizen_id=citizen.id,
        now=now,
        phone_bound=citizen.phone_index is not None,
    )


async def bind_phone(
    session: AsyncSession,
    keys: ServiceKeys,
    principal: Principal,
    *,
    phone: str,
    code: str,
    now: datetime,
) -> schemas.Me:
    """A WeChat user proves a phone with a code sent by sms/send and binds it.

    If the phone already has an account without WeChat (the person used the app first),
    and this WeChat account has proven nothing yet, the two become one: the WeChat login
    moves onto the phone's account and this session follows it.
    """
    citizen = await caller_citizen(session, principal)
    index = keys.phone_index(phone)
    if citizen.phone_index is not None and citizen.phone_index != index:
        raise DomainError("phone_already_bound", "该账号已绑定手机号。")
    await verify_code(session, keys, phone=phone, code=code, now=now)
    if citizen.phone_index == index:
        return await profile(session, principal)
    other = await session.scalar(select(Citizen).where(Citizen.phone_index == index))
    if other is None:
        set_citizen_phone(keys, citizen, phone)
        await session.flush()
        return await profile(session, principal)
    if other.wechat_openid is not None or citizen.id_number_claim_index is not None:
        await commit_and_raise(
            session, DomainError("phone_taken", "该手机号已绑定其他账号，请用手机号登录。")
        )
    openid, unionid = citizen.wechat_openid, citizen.wechat_unionid
    await session.execute(
        update(AuthSession).where(AuthSession.citizen_id == citizen.id).values(citizen_id=other.id)
    )
    await session.delete(citizen)
    await session.flush()
    other.wechat_openid, other.wechat_unionid = openid, unionid
    await session.flush()
    return await profile(session, replace(principal, citizen_id=other.id))
