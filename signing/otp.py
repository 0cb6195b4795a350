"""SMS one-time-code (短信验证码) policy: issuing, rate limiting and verifying codes.

No storage and no clock of its own. The caller keeps two small records and hands them
back on every call:

* an :class:`OtpChallenge` per issued code (the code itself is never stored, only a keyed
  hash bound to the challenge id, the purpose and the subject);
* a per-phone send history: a tuple of aware-UTC datetimes, one per SMS sent.

Typical flow in the API layer::

    policy = OtpPolicy()
    last = <the subject's latest challenge, or None>
    policy.check_send(history, last, now)   # raises OtpLockedError, OtpSendLimitError, ...
    challenge, code = policy.issue(purpose, subject, phone, key, now,
                                   inherited_failures=policy.inherited_failures(last, now))
    history = policy.record_send(history, now)        # persist both, then send `code` by SMS

    new, outcome = policy.verify(challenge, code, key, now, purpose=purpose, subject=subject)
    # persist `new` whatever happened (it carries the failure count), then
    if isinstance(outcome, OtpError): raise outcome

Only the subject's latest challenge should be verified: issuing a code supersedes the
previous one for the same purpose and subject.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

__all__ = [
    "OtpChallenge",
    "OtpError",
    "OtpExpiredError",
    "OtpInvalidError",
    "OtpLockedError",
    "OtpPolicy",
    "OtpResendTooSoonError",
    "OtpSendLimitError",
    "OtpUsedError",
    "OtpVerified",
    "hash_code",
]

_HASH_VERSION = "wangqian-otp-v1"


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")


def _ceil_seconds(delta: timedelta) -> int:
    # Clients wait at least this long; rounding down would invite a retry that is refused.
    return max(1, math.ceil(delta.total_seconds()))


# ---------------------------------------------------------------------------------------
# Outcomes. Each has a stable machine `code`, a Chinese `detail` for people, a suggested
# HTTP status and `extensions()` for the problem+json body.
# ---------------------------------------------------------------------------------------


class OtpError(Exception):
    """A refused send or verification. Subclasses carry the specifics."""

    code: str = "otp_error"
    status: int = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def extensions(self) -> dict[str, object]:
        """Extra members for a problem+json body (beyond code and detail)."""
        return {}


class OtpInvalidError(OtpError):
    """Wrong code; `remaining` more tries are allowed on this challenge."""

    code = "otp_invalid"
    status = 400

    def __init__(self, remaining: int) -> None:
        super().__init__(f"验证码错误，还可尝试 {remaining} 次")
        self.remaining = remaining

    def extensions(self) -> dict[str, object]:
        return {"remaining_tries": self.remaining}


class OtpExpiredError(OtpError):
    code = "otp_expired"
    status = 400

    def __init__(self) -> None:
        super().__init__("验证码已过期，请重新获取")


class OtpUsedError(OtpError):
    code = "otp_used"
    status = 409

    def __init__(self) -> None:
        super().__init__("验证码已使用，请重新获取")


class OtpLockedError(OtpError):
    """Too many wrong codes for this subject; nothing is accepted before `unlock_at`."""

    code = "otp_locked"
    status = 429

    def __init__(self, unlock_at: datetime, retry_after: int) -> None:
        minutes = math.ceil(retry_after / 60)
        super().__init__(f"验证码错误次数过多，请 {minutes} 分钟后再试")
        self.unlock_at = unlock_at
        self.retry_after = retry_after

    def extensions(self) -> dict[str, object]:
        return {"unlock_at": self.unlock_at.isoformat(), "retry_after": self.retry_after}


class OtpResendTooSoonError(OtpError):
    code = "otp_resend_too_soon"
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"发送过于频繁，请 {retry_after} 秒后再试")
        self.retry_after = retry_after

    def extensions(self) -> dict[str, object]:
        return {"retry_after": self.retry_after}


class OtpSendLimitError(OtpError):
    code = "otp_send_limit"
    status = 429

    def __init__(self, retry_after: int) -> None:
        minutes = math.ceil(retry_after / 60)
        super().__init__(f"该手机号获取验证码次数已达上限，请 {minutes} 分钟后再试")
        self.retry_after = retry_after

    def extensions(self) -> dict[str, object]:
        return {"retry_after": self.retry_after}


@dataclass(frozen=True, slots=True)
class OtpVerified:
    """The code was right; the challenge is now used."""

    challenge_id: str
    purpose: str
    subject: str
    phone: str


# ---------------------------------------------------------------------------------------
# State records
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OtpChallenge:
    """One issued code, as the caller stores it. Immutable: updates return new records."""

    id: str
    purpose: str
    subject: str
    phone: str
    code_hash: str
    created_at: datetime
    expires_at: datetime
    # Wrong tries for the subject, including those inherited from earlier challenges.
    failures: int = 0
    used_at: datetime | None = None
    last_failure_at: datetime | None = None
    # Set when `failures` reaches the policy maximum: the subject is locked until then.
    locked_until: datetime | None = None


def hash_code(key: bytes, challenge_id: str, purpose: str, subject: str, code: str) -> str:
    """Keyed hash of a code under its binding (hex HMAC-SHA256).

    JSON framing keeps the fields unambiguous (no "a:b" + "c" == "a" + "b:c" collisions).
    """
    message = json.dumps(
        [_HASH_VERSION, challenge_id, purpose, subject, code],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OtpPolicy:
    """The numbers of the SMS code rules. The defaults are the product's rules."""

    code_length: int = 6
    ttl: timedelta = timedelta(minutes=5)
    max_failures: int = 5
    lock_duration: timedelta = timedelta(minutes=30)
    resend_interval: timedelta = timedelta(seconds=60)
    short_window: timedelta = timedelta(minutes=10)
    max_sends_short_window: int = 5
    long_window: timedelta = timedelta(days=1)
    max_sends_long_window: int = 20

    # -- sending -------------------------------------------------------------------------

    def check_send(
        self,
        history: Sequence[datetime],
        last_challenge_for_subject: OtpChallenge | None,
        now: datetime,
    ) -> None:
        """Refuse a new code if the subject is locked, too soon, or the phone is over quota.

        `history` is the phone's send times; `last_challenge_for_subject` the latest
        challenge with the same purpose and subject (or None). Raises OtpLockedError,
        OtpResendTooSoonError or OtpSendLimitError; returns None when sending is allowed.
        """
        _require_aware(now)
        last = last_challenge_for_subject
        if last is not None:
            if last.locked_until is not None and now < last.locked_until:
                raise OtpLockedError(last.locked_until, _ceil_seconds(last.locked_until - now))
            next_allowed = last.created_at + self.resend_interval
            if now < next_allowed:
                raise OtpResendTooSoonError(_ceil_seconds(next_allowed - now))

        retry_at: datetime | None = None
        for window, limit in (
            (self.short_window, self.max_sends_short_window),
            (self.long_window, self.max_sends_long_window),
        ):
            recent = sorted(t for t in history if now - window < t <= now)
            if len(recent) >= limit:
                # A slot frees up when the oldest send that keeps us at the limit ages out.
                frees_at = recent[len(recent) - limit] + window
                retry_at = frees_at if retry_at is None else max(retry_at, frees_at)
        if retry_at is not None:
            raise OtpSendLimitError(_ceil_seconds(retry_at - now))

    def record_send(self, history: Sequence[datetime], now: datetime) -> tuple[datetime, ...]:
        """The phone's history with this send added; entries older than any window dropped."""
        _require_aware(now)
        keep = max(self.short_window, self.long_window)
        return (*sorted(t for t in history if now - t < keep), now)

    def inherited_failures(
        self, last_challenge_for_subject: OtpChallenge | None, now: datetime
    ) -> int:
        """How many failures a new challenge for this subject starts with.

        Failures carry over to the next code so that asking for a fresh code is no way
        around the try limit. They are forgotten after a successful verification, once a
        lock has run out, or when the last wrong try is older than the lock duration.
        """
        _require_aware(now)
        last = last_challenge_for_subject
        if last is None or last.used_at is not None or last.failures == 0:
            return 0
        if last.locked_until is not None:
            return last.failures if now < last.locked_until else 0
        if last.last_failure_at is not None and now - last.last_failure_at >= self.lock_duration:
            return 0
        return last.failures

    def issue(
        self,
        purpose: str,
        subject: str,
        phone: str,
        key: bytes,
        now: datetime,
        inherited_failures: int = 0,
    ) -> tuple[OtpChallenge, str]:
        """A new challenge record and the plain code to send (never store the code)."""
        _require_aware(now)
        if not purpose or not subject:
            raise ValueError("purpose and subject are required")
        if not 0 <= inherited_failures < self.max_failures:
            raise ValueError("inherited_failures out of range; the subject should be locked")
        challenge_id = secrets.token_urlsafe(16)
        code = f"{secrets.randbelow(10**self.code_length):0{self.code_length}d}"
        record = OtpChallenge(
            id=challenge_id,
            purpose=purpose,
            subject=subject,
            phone=phone,
            code_hash=hash_code(key, challenge_id, purpose, subject, code),
            created_at=now,
            expires_at=now + self.ttl,
            failures=inherited_failures,
        )
        return record, code

    # -- verifying -----------------------------------------------------------------------

    def verify(
        self,
        record: OtpChallenge,
        code: str,
        key: bytes,
        now: datetime,
        *,
        purpose: str,
        subject: str,
    ) -> tuple[OtpChallenge, OtpVerified | OtpError]:
        """Check `code` against `record` for the binding the caller expects.

        `purpose` and `subject` are what the caller is about to authorize (e.g. the
        document hash being signed now), not what the record says: the hash covers them,
        so a code issued for another binding never verifies. Always persist the returned
        record: a wrong try is counted in it.
        """
        _require_aware(now)
        if record.used_at is not None:
            return record, OtpUsedError()
        if record.failures >= self.max_failures:
            if record.locked_until is not None and now < record.locked_until:
                return record, OtpLockedError(
                    record.locked_until, _ceil_seconds(record.locked_until - now)
                )
            # The lock has run out but this code stays dead; a new one is needed.
            return record, OtpExpiredError()
        if now >= record.expires_at:
            return record, OtpExpiredError()

        candidate = code.strip()
        well_formed = (
            len(candidate) == self.code_length and candidate.isascii() and candidate.isdigit()
        )
        # Hash and compare even for malformed input so timing does not tell them apart;
        # malformed input is replaced first (it may not even encode as UTF-8).
        expected = hash_code(key, record.id, purpose, subject, candidate if well_formed else "-")
        matches = hmac.compare_digest(expected, record.code_hash)
        if matches and well_formed:
            used = replace(record, used_at=now)
            return used, OtpVerified(record.id, record.purpose, record.subject, record.phone)

        failures = record.failures + 1
        if failures >= self.max_failures:
            locked_until = now + self.lock_duration
            failed = replace(
                record, failures=failures, last_failure_at=now, locked_until=locked_until
            )
            return failed, OtpLockedError(locked_until, _ceil_seconds(locked_until - now))
        failed = replace(record, failures=failures, last_failure_at=now)
        return failed, OtpInvalidError(self.max_failures - failures)
