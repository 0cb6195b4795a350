"""Mock SMS gateway: signed ``POST /sms/send`` plus an inbox where demo users read messages.

Requests are authenticated like a real gateway: access key, Unix timestamp within 300 s of
the gateway's clock, a nonce never seen before, and a hex HMAC-SHA256 signature over
``timestamp\\nnonce\\nbody`` with the account secret. A repeated ``request_id`` is
treated as a retry: the first message id comes back and nothing is delivered twice.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from miniapp_mock._common import Clock, new_id

TIMESTAMP_TOLERANCE = timedelta(seconds=300)
INBOX_SIZE = 50
_PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")


class SendRequest(msgspec.Struct, forbid_unknown_fields=True):
    phone: str
    template: str
    params: dict[str, str]
    text: str
    request_id: str


class FaultRequest(msgspec.Struct, forbid_unknown_fields=True):
    next_code: str
    status: int = 500
    message: str = ""
    count: int = 1  # fail this many of the next sends


@dataclass(frozen=True, slots=True)
class Delivered:
    message_id: str
    phone: str
    text: str
    template: str
    params: dict[str, str]
    sent_at: datetime


@dataclass
class SmsGatewayState:
    access_key: str
    secret: str
    clock: Clock
    inbox: dict[str, deque[Delivered]] = field(default_factory=dict)
    nonces: dict[str, datetime] = field(default_factory=dict)
    by_request_id: dict[str, str] = field(default_factory=dict)
    faults: deque[FaultRequest] = field(default_factory=deque)

    def _authenticate(self, request: Request, body: bytes) -> tuple[int, str, str] | None:
        """None if the request is genuine, else (status, code, message)."""
        headers = request.headers
        access_key = headers.get("x-sms-access-key", "")
        timestamp = headers.get("x-sms-timestamp", "")
        nonce = headers.get("x-sms-nonce", "")
        signature = headers.get("x-sms-signature", "")
        if not hmac.compare_digest(access_key.encode(), self.access_key.encode()):
            return 401, "ACCESS_KEY_INVALID", "unknown access key"
        if not timestamp.isdigit() or not nonce or not nonce.isascii():
            return 401, "SIGNATURE_INVALID", "missing timestamp or nonce"
        now = self.clock()
        if abs(now.timestamp() - int(timestamp)) > TIMESTAMP_TOLERANCE.total_seconds():
            return 401, "TIMESTAMP_EXPIRED", "timestamp outside 300 s"
        message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
        expected = hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            return 401, "SIGNATURE_INVALID", "signature does not match"
        # Nonces older than the tolerance can be forgotten: their timestamps are refused.
        self.nonces = {n: t for n, t in self.nonces.items() if now - t <= 2 * TIMESTAMP_TOLERANCE}
        if nonce in self.nonces:
            return 401, "NONCE_REUSED", "nonce already used"
        self.nonces[nonce] = now
        return None

    def receive(self, request: Request, body: bytes) -> tuple[int, dict[str, Any]]:
        refused = self._authenticate(request, body)
        if refused is not None:
            status, code, message = refused
            return status, {"code": code, "message": message}
        try:
            payload = msgspec.json.decode(body, type=SendRequest)
        except msgspec.DecodeError as exc:
            return 400, {"code": "BAD_REQUEST", "message": str(exc)}
        if not _PHONE_RE.match(payload.phone):
            return 400, {"code": "INVALID_PHONE", "message": "not a mainland mobile number"}
        if not payload.text or len(payload.text) > 500:
            return 400, {"code": "INVALID_TEXT", "message": "text must be 1..500 characters"}
        if self.faults:
            fault = self.faults.popleft()
            return fault.status, {"code": fault.next_code, "message": fault.message}
        if payload.request_id in self.by_request_id:
            return 200, {"code": "OK", "message_id": self.by_request_id[payload.request_id]}

        message_id = new_id("sms-")
        box = self.inbox.setdefault(payload.phone, deque(maxlen=INBOX_SIZE))
        box.appendleft(Delivered(message_id, payload.phone, payload.text, payload.template,
                                 payload.params, self.clock()))
        self.by_request_id[payload.request_id] = message_id
        return 200, {"code": "OK", "message_id": message_id}


@post("/sms/send", status_code=200)
async def sms_send(request: Request,
                   sms_gateway: NamedDependency[SmsGatewayState]) -> Response[dict[str, Any]]:
    # The raw bytes are needed for the signature, so the body is parsed by hand.
    body = await request.body()
    status, answer = sms_gateway.receive(request, body)
    return Response(answer, status_code=status)


@get("/sms/inbox")
async def sms_inbox(phone: FromQuery[str],
                    sms_gateway: NamedDependency[SmsGatewayState]) -> list[dict[str, Any]]:
    return [
        {
            "message_id": m.message_id,
            "text": m.text,
            "template": m.template,
            "params": m.params,
            "sent_at": m.sent_at.isoformat(),
        }
        for m in sms_gateway.inbox.get(phone.strip(), ())
    ]


@post("/sms/faults", status_code=200)
async def sms_faults(data: JSONBody[FaultRequest],
                     sms_gateway: NamedDependency[SmsGatewayState]) -> dict[str, int]:
    """Make the next ``count`` accepted sends fail with this code (test helper)."""
    sms_gateway.faults.extend([data] * max(1, min(data.count, 1000)))
    return {"queued": len(sms_gateway.faults)}


ROUTES = [sms_send, sms_inbox, sms_faults]
