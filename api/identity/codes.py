"""SMS one-time codes: issued under the OTP policy of ``signing.otp``, bound to a purpose and a
subject (a login phone, a contract party, a seal), sent at once, checked once.

A wrong try is committed before the refusal is raised: the request's session rolls back on
error, and a wrong try must still count.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import as_utc
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import commit_and_raise
from api.identity import schemas
from api.identity.models import (
    OtpChallengeRecord,
    SmsSend,
)
from notifications.sms import SmsChannel, SmsDeliveryError
from notifications.templates import render
from signing.otp import (
    OtpChallenge,
    OtpError,
    OtpExpiredError,
    OtpPolicy,
    OtpUsedError,
    OtpVerified,
)
from signing.pii import mask_phone

log = logging.getLogger("wangqian.identity")


OTP_POLICY = OtpPolicy()


LOGIN_PURPOSE = "login"


# Each purpose has a verification-code template of its own (providers allow one variable,
# the code, in such a template, so what the code is for is fixed wording); their wording
# says 5 minutes, OTP_POLICY's lifetime (tests/api/identity keep the two together).
CODE_TEMPLATES = {
    LOGIN_PURPOSE: "one_time_code",
    "sign": "sign_code",
    "seal": "seal_code",
    "cancel-sign": "cancel_sign_code",
    "password": "password_code",
}


def otp_problem(error: OtpError) -> DomainError:
    return DomainError(error.code, error.detail, **error.extensions())


def _no_live_login_code() -> DomainError:
    """At login, a code used (someone logged in with this phone), expired or never asked
    for all answer alike: which phones have logged in is nobody's business (anyone may
    ask for a code for any phone, so "never asked" proves nothing either)."""
    return DomainError("otp_expired", "验证码无效或已过期，请重新获取。")


async def _lock_phone(session: AsyncSession, phone_index: str) -> None:
    """Serialize sends and verifications per phone. SQLite writers already hold the
    database write lock (BEGIN IMMEDIATE); PostgreSQL takes a transaction advisory lock."""
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.sha256(b"otp:" + phone_index.encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        await session.execute(select(func.pg_advisory_xact_lock(key)))


def _challenge(row: OtpChallengeRecord) -> OtpChallenge:
    return OtpChallenge(
        id=row.challenge_id,
        purpose=row.purpose,
        subject=row.subject,
        phone=row.phone_index,
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
    defaults to the phone (logins), and whether the phone has an account is never looked
    at. Returns the challenge id and the public answer. Only the phone's keyed index is
    stored (the login subject is that index too)."""
    phone_index = keys.phone_index(phone)
    subject = subject or phone_index
    await _lock_phone(session, phone_index)
    last_row = await _latest_challenge(session, purpose, subject)
    last = _challenge(last_row) if last_row is not None else None
    since = now - OTP_POLICY.long_window
    history = list(
        await session.scalars(
            select(SmsSend.sent_at).where(
                SmsSend.phone_index == phone_index,
                SmsSend.purpose == purpose,
                SmsSend.sent_at > since,
            )
        )
    )
    try:
        OTP_POLICY.check_send([as_utc(t) for t in history], last, now)
    except OtpError as refused:
        raise otp_problem(refused) from None
    challenge, code = OTP_POLICY.issue(
        purpose,
        subject,
        phone_index,
        keys.otp,
        now,
        inherited_failures=OTP_POLICY.inherited_failures(last, now),
    )
    session.add(
        OtpChallengeRecord(
            challenge_id=challenge.id,
            purpose=purpose,
            subject=subject,
            phone_index=phone_index,
            code_hash=challenge.code_hash,
            created_at=now,
            expires_at=challenge.expires_at,
            failures=challenge.failures,
        )
    )
    session.add(SmsSend(phone_index=phone_index, sent_at=now, purpose=purpose))
    await session.execute(
        delete(SmsSend).where(SmsSend.phone_index == phone_index, SmsSend.sent_at <= since)
    )
    await session.flush()
    await _send(sms, phone, purpose, code, str(challenge.id))
    return challenge.id, schemas.CodeSent(
        sent=True,
        expires_in=int(OTP_POLICY.ttl.total_seconds()),
        resend_after=int(OTP_POLICY.resend_interval.total_seconds()),
    )


async def _send(sms: SmsChannel, phone: str, purpose: str, code: str, request_id: str) -> None:
    """Codes skip the outbox: they go out at once, ahead of any queue, and a refused send
    must roll back (the person's send quota is not spent) and be told at once."""
    message = render(CODE_TEMPLATES.get(purpose, "one_time_code"), {"code": code})
    try:
        await sms.send(
            phone,
            message.text,
            template=message.template,
            params=message.params,
            request_id=request_id,
        )
    except SmsDeliveryError as failed:
        if failed.unknown:
            # The provider may have sent it, and it does not de-duplicate: keep this code
            # (a second send would be a second code for one request). If none arrives,
            # the person asks again once the resend interval has passed.
            log.warning("SMS to %s outcome unknown: %s", mask_phone(phone), failed.code)
        else:
            # Nothing is recorded (the transaction rolls back): the quota is not spent.
            log.warning("SMS to %s failed: %s", mask_phone(phone), failed.code)
            raise DomainError(
                "sms_unavailable", "短信发送失败，请稍后再试。", retry_after=30
            ) from None


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
    phone_index = keys.phone_index(phone)
    subject = subject or phone_index
    await _lock_phone(session, phone_index)
    row = await _latest_challenge(session, purpose, subject)
    if row is None:
        if purpose == LOGIN_PURPOSE:
            raise _no_live_login_code()
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
        if purpose == LOGIN_PURPOSE and isinstance(outcome, OtpUsedError | OtpExpiredError):
            outcome = _no_live_login_code()
        await commit_and_raise(
            session, outcome if isinstance(outcome, DomainError) else otp_problem(outcome)
        )
    assert isinstance(outcome, OtpVerified)
    return outcome
