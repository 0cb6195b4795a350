"""TOTP (RFC 6238) second factor for staff such as seal keepers (印章授权人) and regulators.

Enrollment gives a base32 secret, its otpauth:// URI and the URI as a QR code (PNG), for
any authenticator app. Verification accepts the current time step and one step either
side (clock drift), and refuses any step at or before the last one accepted for the
account, so an observed code cannot be replayed. The caller stores the secret (encrypted)
and the last accepted step, and limits how often verification may be attempted.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import pyotp

from signing.qr import qr_png

__all__ = [
    "ISSUER",
    "TotpEnrollment",
    "TotpError",
    "TotpInvalidError",
    "TotpReplayedError",
    "enroll",
    "time_step",
    "verify",
]

ISSUER = "Wangqian 网签"
INTERVAL = 30
DIGITS = 6


class TotpError(Exception):
    """A refused TOTP code, with a stable machine `code` and a Chinese `detail`."""

    code: str = "totp_error"
    status: int = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TotpInvalidError(TotpError):
    code = "totp_invalid"

    def __init__(self) -> None:
        super().__init__("动态口令错误")


class TotpReplayedError(TotpError):
    code = "totp_replayed"

    def __init__(self) -> None:
        super().__init__("该动态口令已使用，请等待下一个口令")


@dataclass(frozen=True, slots=True)
class TotpEnrollment:
    secret: str
    uri: str
    qr_png: bytes


def enroll(account_name: str, *, issuer: str = ISSUER, secret: str | None = None) -> TotpEnrollment:
    """A new secret (160 random bits) with its otpauth URI and QR image.

    `account_name` is what the authenticator app shows under the issuer, e.g. a masked
    phone number. Pass `secret` only to re-render an existing enrollment.
    """
    secret = secret or pyotp.random_base32()
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    uri = totp.provisioning_uri(name=account_name, issuer_name=issuer)
    return TotpEnrollment(secret=secret, uri=uri, qr_png=qr_png(uri))


def time_step(now: datetime) -> int:
    """The TOTP counter for `now` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (UTC)")
    return int(now.timestamp()) // INTERVAL


def verify(
    secret: str,
    code: str,
    now: datetime,
    *,
    last_step: int | None,
    window: int = 1,
) -> int:
    """Check `code` and return the time step it matched; store it as the new `last_step`.

    Raises TotpReplayedError if the code only matches steps at or before `last_step`, and
    TotpInvalidError if it matches no step within `window` of now.
    """
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    current = time_step(now)
    candidate = code.strip()
    well_formed = len(candidate) == DIGITS and candidate.isascii() and candidate.isdigit()
    if not well_formed:
        # compare_digest raises on non-ASCII str; keep the loop (and its timing) anyway.
        candidate = "-" * DIGITS

    replayed = False
    matched: int | None = None
    # Check every step of the window (no early exit) so timing says nothing about which.
    for step in range(current - window, current + window + 1):
        same = hmac.compare_digest(totp.generate_otp(step), candidate)
        if same and well_formed:
            if last_step is not None and step <= last_step:
                replayed = True
            elif matched is None:
                matched = step
    if matched is not None:
        return matched
    if replayed:
        raise TotpReplayedError()
    raise TotpInvalidError()
