"""Identity rules: SMS codes, logins and sessions, real-name and face checks, staff.

Services take the session, ``now``, the keys and the outbound clients; no HTTP here.
A refused code is persisted before the refusal is raised (``_commit_and_raise``): the
request session is rolled back on error, and a wrong try must still count.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from base64 import b64encode
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import as_utc, business_date
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.validators import is_valid_mobile, normalize_id_number, resident_id_problem
from api.identity import schemas
from api.identity.clients import FaceClient, IdCheckClient, WeChatClient
from api.identity.models import (
    AuthSession,
    Citizen,
    FaceSession,
    FaceStatus,
    IdentityLevel,
    OtpChallengeRecord,
    PrincipalKind,
    SmsSend,
    StaffMember,
    StaffRole,
    WeChatSubscription,
    staff_projects,
)
from api.register import service as register
from notifications.sms import SmsChannel, SmsDeliveryError
from notifications.templates import TEMPLATES, render
from signing import totp
from signing.otp import OtpChallenge, OtpError, OtpPolicy, OtpVerified
from signing.pii import mask_phone

log = logging.getLogger("wangqian.identity")

OTP_POLICY = OtpPolicy()
LOGIN_PURPOSE = "login"
# How a code's purpose reads in its SMS ("您的登录验证码为…").
PURPOSE_LABELS = {LOGIN_PURPOSE: "登录", "sign": "签署合同", "seal": "合同盖章"}
ID_NUMBER_FIELD = "citizen.id_number"
TOTP_FIELD = "staff.totp_secret"
# Roles a company admin may create; regulators and admins are made by the platform.
ADMIN_CREATES = frozenset({StaffRole.sales_agent, StaffRole.seal_keeper})
FACE_TTL = timedelta(minutes=7)
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from the bearer token by the guards."""

    kind: PrincipalKind
    session_id: uuid.UUID
    citizen_id: uuid.UUID | None = None
    staff_id: uuid.UUID | None = None
    role: StaffRole | None = None
    company_id: uuid.UUID | None = None
    touch_due: bool = False


# ------------------------------------------------------------------ helpers


def normalize_phone(raw: str) -> str:
    phone = "".join(raw.split())
    if phone.startswith("+86"):
        phone = phone[3:]
    if not is_valid_mobile(phone):
        raise DomainError("phone_invalid", "手机号码格式不正确。")
    return phone


def otp_problem(error: OtpError) -> DomainError:
    return DomainError(error.code, error.detail, **error.extensions())


async def _commit_and_raise(session: AsyncSession, problem: DomainError) -> NoReturn:
    await session.commit()
    raise problem


async def _lock_phone(session: AsyncSession, phone: str) -> None:
    """Serialize sends and verifications per phone. SQLite writers already hold the
    database write lock (BEGIN IMMEDIATE); PostgreSQL takes a transaction advisory lock."""
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(b"otp:" + phone.encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        await session.execute(select(func.pg_advisory_xact_lock(key)))


def _challenge(row: OtpChallengeRecord) -> OtpChallenge:
    return OtpChallenge(
        id=row.challenge_id,
        purpose=row.purpose,
        subject=row.subject,
        phone=row.phone,
        code_hash=row.code_hash,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        failures=row.failures,
        used_at=row.used_at,
        last_failure_at=row.last_failure_at,
        locked_until=row.locked_until,
    )


async def _latest_challenge(
    session: AsyncSession, purpose: str, subject: str
) -> OtpChallengeRecord | None:
    return await session.scalar(
        select(OtpChallengeRecord)
        .where(OtpChallengeRecord.purpose == purpose, OtpChallengeRecord.subject == subject)
        .order_by(OtpChallengeRecord.created_at.desc())
        .limit(1)
        .with_for_update()
    )


# ------------------------------------------------------------------ SMS codes


async def send_code(
    session: AsyncSession,
    keys: ServiceKeys,
    sms: SmsChannel,
    *,
    phone: str,
    now: datetime,
    purpose: str = LOGIN_PURPOSE,
    subject: str | None = None,
) -> schemas.CodeSent:
    """Issue and send a code for (purpose, phone). Never looks at whether an account exists."""
    _, sent = await issue_code(
        session, keys, sms, phone=phone, now=now, purpose=purpose, subject=subject
    )
    return sent


async def issue_code(
    session: AsyncSession,
    keys: ServiceKeys,
    sms: SmsChannel,
    *,
    phone: str,
    now: datetime,
    purpose: str = LOGIN_PURPOSE,
    subject: str | None = None,
) -> tuple[str, schemas.CodeSent]:
    """Issue and send a code bound to (purpose, subject), sent to ``phone``; the subject
    defaults to the phone (logins). Returns the challenge id and the public answer."""
    subject = subject or phone
    await _lock_phone(session, phone)
    last_row = await _latest_challenge(session, purpose, subject)
    last = _challenge(last_row) if last_row is not None else None
    since = now - OTP_POLICY.long_window
    history = list(
        await session.scalars(
            select(SmsSend.sent_at).where(SmsSend.phone == phone, SmsSend.sent_at > since)
        )
    )
    try:
        OTP_POLICY.check_send([as_utc(t) for t in history], last, now)
    except OtpError as refused:
        raise otp_problem(refused) from None
    challenge, code = OTP_POLICY.issue(
        purpose,
        subject,
        phone,
        keys.otp,
        now,
        inherited_failures=OTP_POLICY.inherited_failures(last, now),
    )
    session.add(
        OtpChallengeRecord(
            challenge_id=challenge.id,
            purpose=purpose,
            subject=subject,
            phone=phone,
            code_hash=challenge.code_hash,
            created_at=now,
            expires_at=challenge.expires_at,
            failures=challenge.failures,
        )
    )
    session.add(SmsSend(phone=phone, sent_at=now))
    await session.execute(delete(SmsSend).where(SmsSend.phone == phone, SmsSend.sent_at <= since))
    await session.flush()
    message = render(
        "one_time_code",
        {
            "code": code,
            "purpose": PURPOSE_LABELS.get(purpose, "身份验证"),
            "minutes": int(OTP_POLICY.ttl.total_seconds() // 60),
        },
    )
    # Codes skip the outbox: they go out at once, ahead of any queue, and a failed send
    # must roll back (the person's send quota is not spent) and be told at once.
    try:
        await sms.send(phone, message.text, template=message.template, params=message.params)
    except SmsDeliveryError as failed:
        # Nothing is recorded (the transaction rolls back): the quota is not spent.
        log.warning("SMS to %s failed: %s", mask_phone(phone), failed.code)
        raise DomainError("sms_unavailable", "短信发送失败，请稍后再试。", retry_after=30) from None
    return challenge.id, schemas.CodeSent(
        sent=True,
        expires_in=int(OTP_POLICY.ttl.total_seconds()),
        resend_after=int(OTP_POLICY.resend_interval.total_seconds()),
    )


async def verify_code(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    phone: str,
    code: str,
    now: datetime,
    purpose: str = LOGIN_PURPOSE,
    subject: str | None = None,
) -> OtpVerified:
    """Check the latest code for (purpose, subject) (the subject defaults to the phone);
    a wrong try is committed, then raised."""
    subject = subject or phone
    await _lock_phone(session, phone)
    row = await _latest_challenge(session, purpose, subject)
    if row is None:
        raise DomainError("otp_not_requested", "请先获取验证码。")
    updated, outcome = OTP_POLICY.verify(
        _challenge(row), code, keys.otp, now, purpose=purpose, subject=subject
    )
    # Conditional on what we read (besides the lock), so no concurrent verifier's count
    # or use can be overwritten: two guesses are never both the 5th, a code is used once.
    conditions = [OtpChallengeRecord.id == row.id, OtpChallengeRecord.failures == row.failures]
    if row.used_at is None:
        conditions.append(OtpChallengeRecord.used_at.is_(None))
    result = await session.execute(
        update(OtpChallengeRecord)
        .where(*conditions)
        .values(
            failures=updated.failures,
            used_at=updated.used_at,
            last_failure_at=updated.last_failure_at,
            locked_until=updated.locked_until,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise DomainError("otp_conflict", "验证码正在被使用，请重试。")
    await session.refresh(row)
    if isinstance(outcome, OtpError):
        await _commit_and_raise(session, otp_problem(outcome))
    assert isinstance(outcome, OtpVerified)
    return outcome


# ------------------------------------------------------------------ sessions


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
        if staff is None or staff.disabled_at is not None:
            raise DomainError("session_invalid", "登录已失效，请重新登录。")
        principal = replace(
            principal, staff_id=staff.id, role=staff.role, company_id=staff.company_id
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


# ------------------------------------------------------------------ logins


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
        staff = await session.scalar(select(StaffMember).where(StaffMember.phone == phone))
        if kind is PrincipalKind.staff and staff is None:
            await _commit_and_raise(session, DomainError("not_staff", "该手机号不是工作人员账号。"))
    if staff is not None:
        if staff.disabled_at is not None:
            await _commit_and_raise(
                session, DomainError("staff_disabled", "该工作人员账号已停用。")
            )
        # Seal keepers and regulators enroll TOTP; once anyone has, every login needs it.
        if staff.totp_secret_encrypted:
            if not totp_code:
                await _commit_and_raise(
                    session,
                    DomainError("totp_required", "请输入身份验证器中的动态口令。"),
                )
            await _check_totp(session, keys, staff, totp_code, now)
        return await create_session(
            session, policy, kind=PrincipalKind.staff, staff_id=staff.id, now=now
        )
    citizen = await session.scalar(select(Citizen).where(Citizen.phone == phone))
    if citizen is None:
        citizen = Citizen(phone=phone, created_at=now)
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
        phone_bound=citizen.phone is not None,
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
    citizen = await _citizen(session, principal)
    if citizen.phone is not None and citizen.phone != phone:
        raise DomainError("phone_already_bound", "该账号已绑定手机号。")
    await verify_code(session, keys, phone=phone, code=code, now=now)
    if citizen.phone == phone:
        return await profile(session, principal)
    other = await session.scalar(select(Citizen).where(Citizen.phone == phone))
    if other is None:
        citizen.phone = phone
        await session.flush()
        return await profile(session, principal)
    if other.wechat_openid is not None or citizen.id_number_index is not None:
        await _commit_and_raise(
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


# ------------------------------------------------------------------ TOTP


async def _check_totp(
    session: AsyncSession, keys: ServiceKeys, staff: StaffMember, code: str, now: datetime
) -> None:
    assert staff.totp_secret_encrypted is not None
    secret = keys.pii.decrypt(staff.totp_secret_encrypted, field=TOTP_FIELD)
    try:
        step = totp.verify(secret, code, now, last_step=staff.totp_last_step)
    except totp.TotpError as refused:
        await _commit_and_raise(session, DomainError(refused.code, refused.detail))
    # Conditional: two requests with the same code cannot both move past the last step.
    result = await session.execute(
        update(StaffMember)
        .where(
            StaffMember.id == staff.id,
            (StaffMember.totp_last_step.is_(None)) | (StaffMember.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        replayed = totp.TotpReplayedError()
        await _commit_and_raise(session, DomainError(replayed.code, replayed.detail))
    await session.refresh(staff)


async def start_totp(
    session: AsyncSession, keys: ServiceKeys, principal: Principal
) -> schemas.TotpEnrollment:
    staff = await _staff(session, principal)
    if staff.totp_secret_encrypted:
        raise DomainError("totp_already_enabled", "已绑定身份验证器。")
    enrollment = totp.enroll(mask_phone(staff.phone))
    staff.totp_pending_encrypted = keys.pii.encrypt(enrollment.secret, field=TOTP_FIELD)
    await session.flush()
    return schemas.TotpEnrollment(
        secret=enrollment.secret,
        uri=enrollment.uri,
        qr_png_base64=b64encode(enrollment.qr_png).decode(),
    )


async def confirm_totp(
    session: AsyncSession, keys: ServiceKeys, principal: Principal, *, code: str, now: datetime
) -> schemas.TotpEnabled:
    staff = await _staff(session, principal)
    if staff.totp_secret_encrypted:
        raise DomainError("totp_already_enabled", "已绑定身份验证器。")
    if not staff.totp_pending_encrypted:
        raise DomainError("totp_not_started", "请先获取身份验证器的绑定二维码。")
    secret = keys.pii.decrypt(staff.totp_pending_encrypted, field=TOTP_FIELD)
    try:
        step = totp.verify(secret, code, now, last_step=None)
    except totp.TotpError as refused:
        # Its own code: a wrong code while enrolling is a bad request (400), not a failed
        # login (401, which tells clients to log in again).
        raise DomainError("totp_confirm_invalid", refused.detail) from None
    staff.totp_secret_encrypted = staff.totp_pending_encrypted
    staff.totp_pending_encrypted = None
    staff.totp_last_step = step
    staff.totp_enabled_at = now
    await session.flush()
    return schemas.TotpEnabled(totp_enabled=True, enabled_at=now)


# ------------------------------------------------------------------ real name and face


async def _citizen(session: AsyncSession, principal: Principal) -> Citizen:
    citizen = await session.get(Citizen, principal.citizen_id) if principal.citizen_id else None
    if citizen is None:
        raise DomainError("citizen_only", "仅限个人用户使用。")
    return citizen


async def _staff(session: AsyncSession, principal: Principal) -> StaffMember:
    staff = await session.get(StaffMember, principal.staff_id) if principal.staff_id else None
    if staff is None:
        raise DomainError("staff_only", "仅限工作人员使用。")
    return staff


async def submit_real_name(
    session: AsyncSession,
    keys: ServiceKeys,
    idcheck: IdCheckClient,
    principal: Principal,
    *,
    name: str,
    id_number: str,
    now: datetime,
) -> schemas.Me:
    citizen = await _citizen(session, principal)
    name = name.strip()
    if not 2 <= len(name) <= 30 or any(c.isdigit() for c in name):
        raise DomainError("name_invalid", "请填写身份证上的姓名。")
    id_number = normalize_id_number(id_number)
    problem = resident_id_problem(id_number, today=business_date(now))
    if problem is not None:
        detail = {
            "format": "身份证号码应为 18 位（最后一位可为 X）。",
            "birth_date": "身份证号码中的出生日期不存在。",
            "check_char": "身份证号码校验位不正确，请核对。",
        }[problem]
        raise DomainError(f"id_number_{problem}", detail)
    index = keys.id_index(id_number)
    if citizen.id_number_index is not None:
        if citizen.id_number_index == index and citizen.name == name:
            return await profile(session, principal)
        raise DomainError("real_name_already_set", "该账号已完成实名认证，不能更换身份。")
    if await session.scalar(select(Citizen.id).where(Citizen.id_number_index == index)):
        raise DomainError("id_number_taken", "该身份证号码已在其他账号完成实名认证。")
    result = await idcheck.verify(name, id_number)
    if result != "match":
        # "mismatch" and "not_found" look the same: we are no oracle for the ID database.
        raise DomainError("real_name_mismatch", "姓名与身份证号码不一致，请核对后重试。")
    protected = keys.protect_id_number(id_number, field=ID_NUMBER_FIELD)
    citizen.name = name
    citizen.id_number_encrypted = protected.encrypted
    citizen.id_number_index = protected.index
    citizen.id_number_masked = protected.masked
    citizen.identity_level = IdentityLevel.real_name
    citizen.real_name_at = now
    try:
        await session.flush()
    except IntegrityError:
        raise DomainError("id_number_taken", "该身份证号码已在其他账号完成实名认证。") from None
    return await profile(session, principal)


def _face_answer(face: FaceSession, citizen: Citizen) -> schemas.FaceSessionAnswer:
    return schemas.FaceSessionAnswer(
        id=face.id,
        status=face.status,
        url=face.url if face.status is FaceStatus.pending else None,
        expires_at=face.expires_at,
        reason=face.reason,
        identity_level=citizen.identity_level,
    )


async def start_face_session(
    session: AsyncSession,
    keys: ServiceKeys,
    face: FaceClient,
    principal: Principal,
    *,
    redirect_url: str,
    now: datetime,
) -> schemas.FaceSessionAnswer:
    citizen = await _citizen(session, principal)
    if citizen.id_number_encrypted is None or citizen.name is None:
        raise DomainError("real_name_required", "请先完成实名认证。")
    id_number = keys.pii.decrypt(citizen.id_number_encrypted, field=ID_NUMBER_FIELD)
    biz_token, url = await face.start(
        id_number=id_number, name=citizen.name, redirect_url=redirect_url
    )
    row = FaceSession(
        citizen_id=citizen.id,
        biz_token=biz_token,
        url=url,
        status=FaceStatus.pending,
        created_at=now,
        expires_at=now + FACE_TTL,
    )
    session.add(row)
    await session.flush()
    return _face_answer(row, citizen)


async def face_session_result(
    session: AsyncSession,
    keys: ServiceKeys,
    face: FaceClient,
    principal: Principal,
    *,
    face_session_id: uuid.UUID,
    now: datetime,
) -> schemas.FaceSessionAnswer:
    """The outcome, fetched by the server from the provider; the client's word is never taken."""
    citizen = await _citizen(session, principal)
    row = await session.scalar(
        select(FaceSession)
        .where(FaceSession.id == face_session_id, FaceSession.citizen_id == citizen.id)
        .with_for_update()
    )
    if row is None:
        raise DomainError.not_found("人脸核身记录")
    if row.status is not FaceStatus.pending:
        return _face_answer(row, citizen)
    if now >= row.expires_at:
        row.status, row.completed_at, row.reason = FaceStatus.expired, now, "expired"
        await session.flush()
        return _face_answer(row, citizen)
    result = await face.result(row.biz_token)
    if result.status == "pending":
        return _face_answer(row, citizen)
    row.completed_at = now
    if result.status == "passed":
        same_person = (
            citizen.id_number_index is not None
            and result.id_number
            and keys.id_index(result.id_number) == citizen.id_number_index
            and result.name.strip() == (citizen.name or "")
        )
        if same_person:
            row.status = FaceStatus.passed
            citizen.identity_level = IdentityLevel.face_verified
            citizen.face_verified_at = now
        else:
            row.status, row.reason = FaceStatus.failed, "identity_mismatch"
    elif result.status == "expired":
        row.status, row.reason = FaceStatus.expired, "expired"
    else:
        row.status, row.reason = FaceStatus.failed, "face_mismatch"
    await session.flush()
    return _face_answer(row, citizen)


# ------------------------------------------------------------------ staff


async def _project_refs(session: AsyncSession, staff_id: uuid.UUID) -> list[schemas.ProjectRef]:
    ids = list(
        await session.scalars(
            select(staff_projects.c.project_id).where(staff_projects.c.staff_id == staff_id)
        )
    )
    return [
        schemas.ProjectRef(id=p.id, name=p.name) for p in await register.get_projects(session, ids)
    ]


async def _staff_answer(session: AsyncSession, staff: StaffMember) -> schemas.StaffMemberAnswer:
    return schemas.StaffMemberAnswer(
        id=staff.id,
        name=staff.name,
        phone_masked=mask_phone(staff.phone),
        role=staff.role,
        company_id=staff.company_id,
        projects=await _project_refs(session, staff.id),
        disabled=staff.disabled_at is not None,
        totp_enabled=staff.totp_secret_encrypted is not None,
    )


async def _set_projects(
    session: AsyncSession, staff: StaffMember, project_ids: list[uuid.UUID]
) -> None:
    wanted = list(dict.fromkeys(project_ids))
    if wanted and staff.role is not StaffRole.sales_agent:
        raise DomainError("projects_for_agents_only", "只有销售人员可以分配项目。")
    projects = await register.get_projects(session, wanted)
    if len(projects) != len(wanted) or any(p.company_id != staff.company_id for p in projects):
        raise DomainError("project_not_in_company", "只能分配本公司的项目。")
    await session.execute(delete(staff_projects).where(staff_projects.c.staff_id == staff.id))
    if wanted:
        await session.execute(
            insert(staff_projects), [{"staff_id": staff.id, "project_id": p} for p in wanted]
        )


async def create_staff_member(
    session: AsyncSession,
    *,
    name: str,
    phone: str,
    role: StaffRole,
    company_id: uuid.UUID | None,
    now: datetime,
    project_ids: list[uuid.UUID] | None = None,
) -> StaffMember:
    """Any staff member (the demo and the platform use this; admins go through add_member)."""
    phone = normalize_phone(phone)
    if (role is StaffRole.regulator) != (company_id is None):
        raise DomainError("staff_company_invalid", "监管人员不属于企业，其他工作人员必须属于企业。")
    if await session.scalar(select(StaffMember.id).where(StaffMember.phone == phone)):
        raise DomainError("staff_phone_taken", "该手机号已是工作人员账号。")
    staff = StaffMember(
        name=name.strip(), phone=phone, role=role, company_id=company_id, created_at=now
    )
    session.add(staff)
    try:
        await session.flush()
    except IntegrityError:
        raise DomainError("staff_phone_taken", "该手机号已是工作人员账号。") from None
    if project_ids:
        await _set_projects(session, staff, project_ids)
    return staff


async def add_member(
    session: AsyncSession, principal: Principal, data: schemas.NewStaffMember, *, now: datetime
) -> schemas.StaffMemberAnswer:
    if data.role not in ADMIN_CREATES:
        raise DomainError("role_not_allowed", "企业管理员只能添加销售人员和印章授权人。")
    staff = await create_staff_member(
        session,
        name=data.name,
        phone=data.phone,
        role=data.role,
        company_id=principal.company_id,
        now=now,
        project_ids=data.project_ids,
    )
    return await _staff_answer(session, staff)


async def _company_member(
    session: AsyncSession, principal: Principal, staff_id: uuid.UUID
) -> StaffMember:
    staff = await session.get(StaffMember, staff_id)
    if staff is None or staff.company_id != principal.company_id:
        raise DomainError.not_found("工作人员")
    return staff


async def list_members(session: AsyncSession, principal: Principal) -> schemas.StaffList:
    rows = await session.scalars(
        select(StaffMember)
        .where(StaffMember.company_id == principal.company_id)
        .order_by(StaffMember.created_at, StaffMember.phone)
    )
    return schemas.StaffList(members=[await _staff_answer(session, s) for s in rows])


async def disable_member(
    session: AsyncSession, principal: Principal, staff_id: uuid.UUID, *, now: datetime
) -> schemas.StaffMemberAnswer:
    staff = await _company_member(session, principal, staff_id)
    if staff.id == principal.staff_id:
        raise DomainError("cannot_disable_self", "不能停用自己的账号。")
    if staff.disabled_at is None:
        staff.disabled_at = now
        await session.execute(
            update(AuthSession)
            .where(AuthSession.staff_id == staff.id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await session.flush()
    return await _staff_answer(session, staff)


async def assign_projects(
    session: AsyncSession, principal: Principal, staff_id: uuid.UUID, project_ids: list[uuid.UUID]
) -> schemas.StaffMemberAnswer:
    staff = await _company_member(session, principal, staff_id)
    await _set_projects(session, staff, project_ids)
    return await _staff_answer(session, staff)


async def existing_staff_phones(session: AsyncSession, phones: list[str]) -> set[str]:
    """Which of these phones already belong to a staff member (for idempotent loaders)."""
    return set(
        await session.scalars(select(StaffMember.phone).where(StaffMember.phone.in_(phones)))
    )


async def staff_project_ids(session: AsyncSession, staff_id: uuid.UUID) -> list[uuid.UUID]:
    """The projects a sales agent is assigned (for the contracts context)."""
    return list(
        await session.scalars(
            select(staff_projects.c.project_id).where(staff_projects.c.staff_id == staff_id)
        )
    )


# ------------------------------------------------------------------ profile


async def profile(session: AsyncSession, principal: Principal) -> schemas.Me:
    if principal.kind is PrincipalKind.citizen:
        citizen = await _citizen(session, principal)
        return schemas.Me(
            kind=PrincipalKind.citizen,
            id=citizen.id,
            roles=["citizen"],
            phone_masked=mask_phone(citizen.phone) if citizen.phone else None,
            name=citizen.name,
            id_number_masked=citizen.id_number_masked,
            identity_level=citizen.identity_level,
            wechat_bound=citizen.wechat_openid is not None,
        )
    staff = await _staff(session, principal)
    company = await register.get_company(session, staff.company_id) if staff.company_id else None
    return schemas.Me(
        kind=PrincipalKind.staff,
        id=staff.id,
        roles=[staff.role.value],
        phone_masked=mask_phone(staff.phone),
        name=staff.name,
        company=schemas.CompanyRef(id=company.id, name=company.name) if company else None,
        projects=await _project_refs(session, staff.id),
        totp_enabled=staff.totp_secret_encrypted is not None,
        disabled=staff.disabled_at is not None,
    )


# ------------------------------------------------------------------ for other contexts


@dataclass(frozen=True)
class CitizenIdentity:
    """What the contracts context may know of a citizen."""

    id: uuid.UUID
    phone: str | None
    name: str | None
    id_number_index: str | None
    identity_level: IdentityLevel


async def citizen_identity(session: AsyncSession, citizen_id: uuid.UUID) -> CitizenIdentity | None:
    citizen = await session.get(Citizen, citizen_id)
    if citizen is None:
        return None
    return CitizenIdentity(
        id=citizen.id,
        phone=citizen.phone,
        name=citizen.name,
        id_number_index=citizen.id_number_index,
        identity_level=citizen.identity_level,
    )


@dataclass(frozen=True)
class StaffIdentity:
    id: uuid.UUID
    name: str
    phone: str
    role: StaffRole
    company_id: uuid.UUID | None
    totp_enabled: bool


async def staff_identity(session: AsyncSession, staff_id: uuid.UUID) -> StaffIdentity | None:
    staff = await session.get(StaffMember, staff_id)
    if staff is None:
        return None
    return StaffIdentity(
        id=staff.id,
        name=staff.name,
        phone=staff.phone,
        role=staff.role,
        company_id=staff.company_id,
        totp_enabled=staff.totp_secret_encrypted is not None,
    )


async def check_staff_totp(
    session: AsyncSession, keys: ServiceKeys, staff_id: uuid.UUID, code: str | None, now: datetime
) -> None:
    """A staff member enrolled in TOTP proves it again (sealing); a no-op when not enrolled."""
    staff = await _staff(
        session, Principal(kind=PrincipalKind.staff, session_id=staff_id, staff_id=staff_id)
    )
    if not staff.totp_secret_encrypted:
        return
    if not code:
        raise DomainError("totp_required", "请输入身份验证器中的动态口令。")
    await _check_totp(session, keys, staff, code, now)


async def staff_by_phone(session: AsyncSession, phone: str) -> StaffIdentity | None:
    """A staff member by login phone (the demo acts as its sales agent)."""
    staff_id = await session.scalar(select(StaffMember.id).where(StaffMember.phone == phone))
    return await staff_identity(session, staff_id) if staff_id is not None else None


# ------------------------------------------------------------------ WeChat subscriptions

# Consents a citizen can bank per template: enough for a purchase's messages, and a bound
# on what a script tapping "accept" can pile up.
MAX_SUBSCRIPTION_GRANTS = 20
_SUBSCRIPTION_ANSWERS = {"accept", "reject", "ban", "filter"}


def subscribable_templates() -> dict[str, str]:
    """WeChat template id -> title, for every message a citizen may receive over WeChat."""
    return {t.wechat.template_id: t.title for t in TEMPLATES.values() if t.wechat is not None}


async def wechat_subscriptions(
    session: AsyncSession, principal: Principal
) -> schemas.Subscriptions:
    """The messages the mini program can ask to subscribe to, with what is left of each."""
    citizen = await _citizen(session, principal)
    remaining: dict[str, int] = {}
    if citizen.wechat_openid is not None:
        rows = await session.execute(
            select(WeChatSubscription.template_id, WeChatSubscription.remaining).where(
                WeChatSubscription.openid == citizen.wechat_openid
            )
        )
        remaining = {template_id: count for template_id, count in rows.all()}
    return schemas.Subscriptions(
        subscriptions=[
            schemas.Subscription(template_id=tid, title=title, remaining=remaining.get(tid, 0))
            for tid, title in subscribable_templates().items()
        ]
    )


async def record_wechat_subscriptions(
    session: AsyncSession, principal: Principal, *, results: dict[str, str], now: datetime
) -> schemas.Subscriptions:
    """Record what the citizen answered in wx.requestSubscribeMessage: each "accept" allows
    one more message of that template, "ban" turns it off, "reject" and "filter" leave what
    was allowed before."""
    citizen = await _citizen(session, principal)
    if citizen.wechat_openid is None:
        raise DomainError("wechat_not_bound", "请先用微信登录小程序，再订阅消息提醒。")
    known = subscribable_templates()
    unknown = sorted(set(results) - set(known))
    if unknown:
        raise DomainError("subscription_template_unknown", f"未知的消息模板：{unknown[0]}。")
    if any(answer not in _SUBSCRIPTION_ANSWERS for answer in results.values()):
        raise DomainError(
            "subscription_result_invalid", "订阅结果只能是 accept、reject、ban 或 filter。"
        )
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    for template_id, answer in sorted(results.items()):
        if answer not in {"accept", "ban"}:
            continue
        accepted = answer == "accept"
        statement = dialect.insert(WeChatSubscription).values(
            id=uuid.uuid4(),
            openid=citizen.wechat_openid,
            template_id=template_id,
            remaining=1 if accepted else 0,
            updated_at=now,
        )
        # One statement, so two taps recorded at once both count.
        more = case(
            (WeChatSubscription.remaining >= MAX_SUBSCRIPTION_GRANTS, MAX_SUBSCRIPTION_GRANTS),
            else_=WeChatSubscription.remaining + 1,
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["openid", "template_id"],
                set_={"remaining": more if accepted else 0, "updated_at": now},
            )
        )
    return await wechat_subscriptions(session, principal)


async def take_wechat_subscription(
    session: AsyncSession, *, phone: str, template_id: str, now: datetime
) -> str | None:
    """The openid to send one ``template_id`` message to the citizen who holds ``phone``,
    using up one of their consents; None when they have none left (or no WeChat login)."""
    openid = await session.scalar(
        select(Citizen.wechat_openid).where(
            Citizen.phone == phone, Citizen.wechat_openid.is_not(None)
        )
    )
    if openid is None:
        return None
    taken = await session.execute(
        update(WeChatSubscription)
        .where(
            WeChatSubscription.openid == openid,
            WeChatSubscription.template_id == template_id,
            WeChatSubscription.remaining > 0,
        )
        .values(remaining=WeChatSubscription.remaining - 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return openid if taken.rowcount == 1 else None
