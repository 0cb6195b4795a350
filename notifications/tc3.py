"""Tencent Cloud API 3.0 request signing (``TC3-HMAC-SHA256``), for both ends of a call.

Written here rather than taken from ``tencentcloud-sdk-python-common``: that SDK signs and
sends in one synchronous ``requests``-based client, while our calls go through the one
shared ``httpx.AsyncClient`` (which tests point at the in-process mocks). The algorithm is
Tencent's published one ("签名方法 v3"); ``tests/notifications/test_provider_signing.py``
checks it against the published worked example (CVM DescribeInstances, 1551113065).

The canonical request signs ``content-type``, ``host`` and ``x-tc-action``, as the
published example does; the credential scope is the UTC date of ``X-TC-Timestamp``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

ALGORITHM = "TC3-HMAC-SHA256"
CONTENT_TYPE = "application/json; charset=utf-8"
SIGNED_HEADERS = "content-type;host;x-tc-action"

__all__ = ["ALGORITHM", "TencentCall", "authorization", "parse_authorization", "signed_headers"]


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_request(host: str, action: str, payload: bytes) -> str:
    return "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{CONTENT_TYPE}",
            f"host:{host.lower()}",
            f"x-tc-action:{action.lower()}",
            "",
            SIGNED_HEADERS,
            _sha256_hex(payload),
        ]
    )


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{_sha256_hex(canonical.encode('utf-8'))}"


def signature(secret_key: str, timestamp: int, service: str, to_sign: str) -> str:
    key = _hmac(("TC3" + secret_key).encode("utf-8"), utc_date(timestamp))
    key = _hmac(key, service)
    key = _hmac(key, "tc3_request")
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(
    secret_id: str, secret_key: str, *, service: str, host: str, action: str,
    timestamp: int, payload: bytes,
) -> str:
    """The ``Authorization`` header value of one call."""
    to_sign = string_to_sign(timestamp, service, canonical_request(host, action, payload))
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    sig = signature(secret_key, timestamp, service, to_sign)
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders={SIGNED_HEADERS}, Signature={sig}"
    )


def signed_headers(
    secret_id: str, secret_key: str, *, service: str, host: str, action: str, version: str,
    region: str, timestamp: int, payload: bytes,
) -> dict[str, str]:
    """Every header a TencentCloud API 3.0 POST carries (region may be empty where the
    product takes none)."""
    headers = {
        "Content-Type": CONTENT_TYPE,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": version,
        "X-TC-Timestamp": str(timestamp),
        "Authorization": authorization(
            secret_id, secret_key, service=service, host=host, action=action,
            timestamp=timestamp, payload=payload,
        ),
    }
    if region:
        headers["X-TC-Region"] = region
    return headers


@dataclass(frozen=True)
class TencentCall:
    """What the server side of a call reads from an ``Authorization`` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: str
    signature: str


def parse_authorization(header: str) -> TencentCall | None:
    """The parts of a TC3 ``Authorization`` header, or None if it is not one."""
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        return None
    parts = {}
    for item in rest.split(","):
        name, _, value = item.strip().partition("=")
        parts[name] = value
    credential = parts.get("Credential", "").split("/")
    if len(credential) != 4 or credential[3] != "tc3_request" or "Signature" not in parts:
        return None
    return TencentCall(
        secret_id=credential[0],
        date=credential[1],
        service=credential[2],
        signed_headers=parts.get("SignedHeaders", ""),
        signature=parts["Signature"],
    )
