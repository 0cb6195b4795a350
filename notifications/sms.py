"""SMS (短信) channel: the interface the API layer sends through, and what every provider's
channel shares.

A channel sends one templated message (the provider renders it from an approved template
and our parameters; the signature comes from its SignName) and answers what became of a
message it may have sent. Neither Alibaba Cloud nor Tencent Cloud de-duplicates sends, so
a send that may have reached the provider (a timeout, a 5xx) raises ``SmsDeliveryError``
with ``unknown=True``: the caller must ask ``status`` before sending again.

Providers: ``aliyun_sms`` (dysmsapi 2017-05-25) and ``tencent_sms`` (sms 2021-01-11).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal, Protocol, TypeVar, runtime_checkable

import httpx
import msgspec

__all__ = [
    "MemorySmsChannel",
    "ProviderTemplate",
    "SentSms",
    "SmsChannel",
    "SmsDeliveryError",
    "SmsReceipt",
    "SmsStatus",
    "UnconfiguredSmsChannel",
    "parse_template_codes",
]


@dataclass(frozen=True, slots=True)
class SmsReceipt:
    """The provider accepted the message: its id (Alibaba BizId, Tencent SerialNo) and ours."""

    message_id: str
    request_id: str


class SmsDeliveryError(Exception):
    """The provider refused the message or could not be reached.

    ``code`` is the provider's own code (``isv.BUSINESS_LIMIT_CONTROL``,
    ``LimitExceeded.PhoneNumberDailyLimit``), ``TEMPLATE_NOT_MAPPED`` or
    ``TRANSPORT_ERROR``/``HTTP_<status>``. ``retryable``: trying again later may work.
    ``unknown``: the provider may have accepted it; ask ``status`` before any resend.
    """

    def __init__(self, code: str, message: str = "", *, status: int | None = None,
                 retryable: bool = False, unknown: bool = False) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.retryable = retryable or unknown
        self.unknown = unknown


SmsState = Literal["delivered", "failed", "pending", "absent", "unknown"]


@dataclass(frozen=True, slots=True)
class SmsStatus:
    """What a provider says of one message.

    ``delivered``/``failed``: the handset's receipt; ``pending``: accepted, no receipt yet;
    ``absent``: the provider has no such message (it was never accepted: safe to send);
    ``unknown``: the provider cannot tell (no receipt yet, or the lookup failed).
    """

    state: SmsState
    provider_id: str = ""
    request_id: str = ""
    code: str = ""
    detail: str = ""
    at: datetime | None = None


@runtime_checkable
class SmsChannel(Protocol):
    async def send(self, phone: str, text: str, *, template: str,
                   params: dict[str, str], request_id: str | None = None) -> SmsReceipt:
        """Send our template ``template`` with ``params`` to ``phone`` (``text`` is the
        rendered wording, for channels that keep it); ``request_id`` is our message id,
        stored with the provider so ``status`` can find the message again."""
        ...

    async def status(self, phone: str, *, request_id: str, provider_id: str,
                     sent_at: datetime) -> SmsStatus:
        """What became of the message sent (or perhaps sent) at ``sent_at``."""
        ...

    def receipts(self, body: bytes) -> list[SmsStatus]:
        """The delivery receipts of a provider's callback; ``ValueError`` if it is none."""
        ...

    def receipt_answer(self) -> dict[str, object]:
        """What the provider wants back once its receipts are recorded."""
        ...


class UnconfiguredSmsChannel:
    """The channel when no provider is configured: every send fails, and says why."""

    async def send(self, phone: str, text: str, *, template: str,
                   params: dict[str, str], request_id: str | None = None) -> SmsReceipt:
        raise SmsDeliveryError("NOT_CONFIGURED", "no SMS provider configured")

    async def status(self, phone: str, *, request_id: str, provider_id: str,
                     sent_at: datetime) -> SmsStatus:
        return SmsStatus("unknown", detail="no SMS provider configured")

    def receipts(self, body: bytes) -> list[SmsStatus]:
        raise ValueError("no SMS provider configured")

    def receipt_answer(self) -> dict[str, object]:
        return {}


@dataclass(frozen=True, slots=True)
class ProviderTemplate:
    """One of our templates as registered with the provider: its code (Alibaba
    ``SMS_123456789``, Tencent template id) and the variables it takes, in order (Tencent's
    ``TemplateParamSet`` is positional: {1}, {2}, ...)."""

    code: str
    params: tuple[str, ...]


class _TemplateRef(msgspec.Struct, forbid_unknown_fields=True):
    code: str
    params: list[str] | None = None


def parse_template_codes(
    raw: str, variables: Mapping[str, tuple[str, ...]]
) -> dict[str, ProviderTemplate]:
    """``WANGQIAN_SMS_TEMPLATE_CODES``: a JSON object from our template keys to the
    provider's code, either ``"SMS_1"`` or ``{"code": "1234", "params": ["code"]}``.
    ``variables`` gives each template's own variables (the default order). Raises
    ``ValueError`` on a malformed map, an unknown key or a parameter the template lacks."""
    if not raw.strip():
        return {}
    try:
        decoded = msgspec.json.decode(raw, type=dict[str, str | _TemplateRef])
    except msgspec.DecodeError as exc:
        raise ValueError(f"WANGQIAN_SMS_TEMPLATE_CODES is not a JSON object: {exc}") from None
    mapped: dict[str, ProviderTemplate] = {}
    for key, value in decoded.items():
        if key not in variables:
            raise ValueError(f"WANGQIAN_SMS_TEMPLATE_CODES names unknown template {key!r}")
        ref = _TemplateRef(code=value) if isinstance(value, str) else value
        order = tuple(ref.params) if ref.params is not None else variables[key]
        if set(order) != set(variables[key]) or len(order) != len(variables[key]):
            raise ValueError(
                f"WANGQIAN_SMS_TEMPLATE_CODES[{key!r}] params {list(order)} must be exactly "
                f"{list(variables[key])} in some order"
            )
        if not ref.code.strip():
            raise ValueError(f"WANGQIAN_SMS_TEMPLATE_CODES[{key!r}] has an empty code")
        mapped[key] = ProviderTemplate(ref.code.strip(), order)
    return mapped


_Answer = TypeVar("_Answer")
SHANGHAI = timezone(timedelta(hours=8))


def shanghai_time(text: str) -> datetime | None:
    """A provider's ``2026-03-01 16:00:05`` (Beijing time) as UTC, or None."""
    try:
        local = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return local.replace(tzinfo=SHANGHAI).astimezone(UTC)


def decode_receipts(body: bytes, kind: type[_Answer], provider: str) -> list[_Answer]:
    """A callback's JSON array of receipts; ``ValueError`` when it is not one."""
    try:
        return msgspec.json.decode(body, type=list[kind])  # type: ignore[valid-type]
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a {provider} SMS receipt: {exc}") from None


def decode_answer(response: httpx.Response, kind: type[_Answer]) -> _Answer | None:
    """A provider's JSON answer as ``kind``, or None when it is not one."""
    try:
        return msgspec.json.decode(response.content, type=kind)
    except msgspec.DecodeError:
        return None


def not_mapped(template: str) -> SmsDeliveryError:
    return SmsDeliveryError(
        "TEMPLATE_NOT_MAPPED",
        f"template {template!r} has no provider template code (WANGQIAN_SMS_TEMPLATE_CODES)",
    )


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

    async def status(self, phone: str, *, request_id: str, provider_id: str,
                     sent_at: datetime) -> SmsStatus:
        return SmsStatus("unknown")

    def receipts(self, body: bytes) -> list[SmsStatus]:
        raise ValueError("the memory channel gets no receipts")

    def receipt_answer(self) -> dict[str, object]:
        return {}

    def last_to(self, phone: str) -> SentSms | None:
        """The newest message sent to `phone`, if any."""
        return next((m for m in reversed(self.sent) if m.phone == phone), None)
