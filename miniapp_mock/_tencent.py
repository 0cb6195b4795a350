"""What the Tencent Cloud API 3.0 mocks (SMS, FaceID) share: checking a TC3-signed call as
Tencent does, and answering in its envelope (``{"Response": {..., "RequestId"}}``, errors as
``Response.Error`` in an HTTP 200)."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from typing import Any

from litestar import Request, Response

from notifications import tc3

TIMESTAMP_TOLERANCE = 300


def respond(**fields: Any) -> Response[dict[str, Any]]:
    return Response({"Response": {**fields, "RequestId": secrets.token_hex(16)}})


def error(code: str, message: str = "") -> Response[dict[str, Any]]:
    return respond(Error={"Code": code, "Message": message or code})


def refusal(
    request: Request, body: bytes, *, service: str, version: str, secret_id: str,
    secret_key: str, now: datetime,
) -> str | None:
    """None if the call is genuine, else Tencent's error code for it."""
    headers = request.headers
    call = tc3.parse_authorization(headers.get("authorization", ""))
    if call is None:
        return "AuthFailure.InvalidAuthorization"
    if not hmac.compare_digest(call.secret_id.encode(), secret_id.encode()):
        return "AuthFailure.SecretIdNotFound"
    stamp = headers.get("x-tc-timestamp", "")
    if not stamp.isdigit() or abs(now.timestamp() - int(stamp)) > TIMESTAMP_TOLERANCE:
        return "AuthFailure.SignatureExpire"
    if call.service != service or call.date != tc3.utc_date(int(stamp)):
        return "AuthFailure.SignatureFailure"
    expected = tc3.authorization(
        call.secret_id, secret_key, service=service, host=headers.get("host", ""),
        action=headers.get("x-tc-action", ""), timestamp=int(stamp), payload=body,
    )
    if not hmac.compare_digest(expected.encode(), headers.get("authorization", "").encode()):
        return "AuthFailure.SignatureFailure"
    if headers.get("x-tc-version") != version:
        return "NoSuchVersion"
    if not headers.get("x-tc-region"):
        return "MissingParameter"
    return None
