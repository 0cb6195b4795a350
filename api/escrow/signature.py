"""Bank webhook signatures: ``X-Bank-Signature: t=<unix>,v1=<hex HMAC-SHA256("t.body")>``.

Several ``v1=`` values may be sent and several secrets may be configured at once (key
rotation): any configured secret matching any given signature is enough. Comparison is
constant-time; a timestamp further than the tolerance from our clock is refused.
"""

from __future__ import annotations

import hashlib
import hmac

from api.core.errors import DomainError

HEADER = "X-Bank-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def compute(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={compute(secret, timestamp, body)}"


def verify(
    header: str | None,
    body: bytes,
    secrets: list[str],
    *,
    now_unix: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Return the signed timestamp or raise the matching problem."""
    if not header:
        raise DomainError("bank_signature_missing", "缺少银行签名 (X-Bank-Signature)。")
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            given.append(value.strip().lower())
    if timestamp is None or not given:
        raise DomainError("bank_signature_invalid", "银行签名格式不正确。")
    if not secrets:
        raise DomainError("bank_not_configured", "未配置银行回调密钥。")
    valid = False
    for secret in secrets:
        expected = compute(secret, timestamp, body).encode()
        for candidate in given:
            # Check every pair so timing does not tell which secret or position matched.
            valid |= hmac.compare_digest(expected, candidate.encode())
    if not valid:
        raise DomainError("bank_signature_invalid", "银行签名校验失败。")
    if abs(now_unix - timestamp) > tolerance:
        raise DomainError(
            "bank_signature_stale", "银行签名已过期，请重新签名后发送。", tolerance=tolerance
        )
    return timestamp
