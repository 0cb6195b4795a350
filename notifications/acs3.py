"""Alibaba Cloud API V3 request signing (``ACS3-HMAC-SHA256``), for both ends of a call.

Written here rather than through ``alibabacloud-tea-openapi``: the Tea client sends with
its own HTTP stack, while our calls go through the one shared ``httpx.AsyncClient``
(which tests point at the in-process mocks), and the algorithm is short and published
("V3版本请求体&签名机制"). ``tests/notifications/test_provider_signing.py`` checks it
against Alibaba's published fixed-parameter example (ECS RunInstances, 2023-10-26).

RPC-style APIs such as dysmsapi take their parameters in the query string, so the body is
empty and ``x-acs-content-sha256`` is the hash of nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"

__all__ = ["ALGORITHM", "AlibabaCall", "authorization", "canonical_query", "parse_authorization"]


def percent_encode(value: str) -> str:
    """RFC 3986 encoding, as the V3 signature requires (space is %20, ``~`` is kept)."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())
    )


def _canonical(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """(canonical request, signed header names). Headers: host, content-type if any, and
    every ``x-acs-*`` header, lower-cased and sorted."""
    signed = {
        k.lower(): v.strip()
        for k, v in headers.items()
        if k.lower() in ("host", "content-type") or k.lower().startswith("x-acs-")
    }
    names = sorted(signed)
    lines = [
        method.upper(),
        path or "/",
        canonical_query(query),
        *(f"{name}:{signed[name]}" for name in names),
        "",
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ]
    return "\n".join(lines), ";".join(names)


def authorization(
    access_key_id: str, secret: str, *, method: str, path: str, query: Mapping[str, str],
    headers: Mapping[str, str], body: bytes = b"",
) -> str:
    """The ``Authorization`` header for a request whose ``x-acs-*`` headers (action,
    version, date, nonce, content hash) and host are already in ``headers``."""
    canonical, names = _canonical(method, path, query, headers, body)
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
    sig = hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={names},Signature={sig}"


def content_hash(body: bytes = b"") -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class AlibabaCall:
    access_key_id: str
    signed_headers: str
    signature: str


def parse_authorization(header: str) -> AlibabaCall | None:
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        return None
    parts = dict(item.strip().partition("=")[::2] for item in rest.split(","))
    if not parts.get("Credential") or not parts.get("Signature"):
        return None
    return AlibabaCall(parts["Credential"], parts.get("SignedHeaders", ""), parts["Signature"])
