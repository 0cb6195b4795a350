"""SMS (短信) channel: the interface the API layer sends through, and an HTTP gateway client.

The gateway protocol: ``POST {base_url}/sms/send`` with a JSON body
``{phone, template, params, text, request_id}`` and four headers,

* ``X-Sms-Access-Key``: which account is calling,
* ``X-Sms-Timestamp``: Unix seconds,
* ``X-Sms-Nonce``: random, never reused,
* ``X-Sms-Signature``: hex HMAC-SHA256 with the account secret over
  ``f"{timestamp}\\n{nonce}\\n{body}"`` (body is the exact bytes sent).

It answers ``{"code": "OK", "message_id": ...}``; anything else is a failure carrying the
gateway's code. `request_id` lets the gateway recognise a retry of the same message.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import httpx
import msgspec

__all__ = [
    "HttpSmsChannel",
    "MemorySmsChannel",
    "SentSms",
    "SmsChannel",
    "SmsDeliveryError",
    "SmsReceipt",
    "UnconfiguredSmsChannel",
    "sign_sms_request",
]


@dataclass(frozen=True, slots=True)
class SmsReceipt:
    """The gateway accepted the message."""

    message_id: str
    request_id: str


class SmsDeliveryError(Exception):
    """The gateway refused the message or could not be reached.

    `code` is the gateway's own code (e.g. "SIGNATURE_INVALID"), or "HTTP_<status>" when
    it gave none, or "TRANSPORT_ERROR". `retryable` says whether trying again later with
    the same request id may succeed.
    """

    def __init__(self, code: str, message: str = "", *, status: int | None = None,
                 retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.retryable = retryable


@runtime_checkable
class SmsChannel(Protocol):
    async def send(self, phone: str, text: str, *, template: str,
                   params: dict[str, str], request_id: str | None = None) -> SmsReceipt:
        """Send `text` (already rendered from `template` with `params`) to `phone`.

        The same `request_id` on a retry lets the gateway deliver the message only once.
        """
        ...


class UnconfiguredSmsChannel:
    """The channel when no gateway is configured: every send fails, and says why."""

    async def send(self, phone: str, text: str, *, template: str,
                   params: dict[str, str], request_id: str | None = None) -> SmsReceipt:
        raise SmsDeliveryError("NOT_CONFIGURED", "no SMS gateway configured")


class _SendBody(msgspec.Struct, forbid_unknown_fields=True):
    phone: str
    template: str
    params: dict[str, str]
    text: str
    request_id: str


class _GatewayAnswer(msgspec.Struct):
    code: str = ""
    message: str = ""
    message_id: str = ""


def sign_sms_request(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over ``timestamp\\nnonce\\nbody``."""
    message = timestamp.encode("ascii") + b"\n" + nonce.encode("ascii") + b"\n" + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


# Gateway codes that mean "later may work"; everything else needs a person to fix it.
_RETRYABLE_CODES = frozenset({"RATE_LIMITED", "BUSINESS_LIMIT_CONTROL", "SYSTEM_BUSY"})


class HttpSmsChannel:
    """SmsChannel over the signed HTTP gateway protocol described in the module docstring."""

    def __init__(
        self,
        base_url: str,
        access_key: str,
        secret: str,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = base_url.rstrip("/") + "/sms/send"
        self._access_key = access_key
        self._secret = secret
        self._client = client
        self._clock = clock

    async def send(
        self,
        phone: str,
        text: str,
        *,
        template: str,
        params: dict[str, str],
        request_id: str | None = None,
    ) -> SmsReceipt:
        """Send one message. Pass the same `request_id` when retrying the same message."""
        request_id = request_id or secrets.token_hex(16)
        body = msgspec.json.encode(
            _SendBody(phone=phone, template=template, params=dict(params), text=text,
                      request_id=request_id)
        )
        timestamp = str(int(self._clock()))
        nonce = secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json",
            "X-Sms-Access-Key": self._access_key,
            "X-Sms-Timestamp": timestamp,
            "X-Sms-Nonce": nonce,
            "X-Sms-Signature": sign_sms_request(self._secret, timestamp, nonce, body),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SmsDeliveryError("TRANSPORT_ERROR", str(exc), retryable=True) from exc

        try:
            answer = msgspec.json.decode(response.content, type=_GatewayAnswer)
        except msgspec.DecodeError:
            answer = None
        status = response.status_code
        server_trouble = status >= 500 or status == 429
        if answer is None or not answer.code:
            raise SmsDeliveryError(f"HTTP_{status}", response.text[:200], status=status,
                                   retryable=server_trouble)
        if not 200 <= status < 300 or answer.code != "OK":
            raise SmsDeliveryError(answer.code, answer.message, status=status,
                                   retryable=server_trouble or answer.code in _RETRYABLE_CODES)
        if not answer.message_id:
            raise SmsDeliveryError(f"HTTP_{status}", "no message_id in answer", status=status)
        return SmsReceipt(message_id=answer.message_id, request_id=request_id)


@dataclass(frozen=True, slots=True)
class SentSms:
    phone: str
    text: str
    template: str
    params: dict[str, str]


@dataclass(slots=True)
class MemorySmsChannel:
    """SmsChannel that only records messages, for tests of code that sends SMS."""

    sent: list[SentSms] = field(default_factory=list)

    async def send(self, phone: str, text: str, *, template: str,
                   params: dict[str, str], request_id: str | None = None) -> SmsReceipt:
        self.sent.append(SentSms(phone, text, template, dict(params)))
        return SmsReceipt(message_id=f"mem-{len(self.sent)}",
                          request_id=request_id or secrets.token_hex(8))

    def last_to(self, phone: str) -> SentSms | None:
        """The newest message sent to `phone`, if any."""
        return next((m for m in reversed(self.sent) if m.phone == phone), None)
