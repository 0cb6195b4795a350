"""Delivering one rendered message: channel choice, WeChat-to-SMS fallback, retry policy.

No database here: the outbox in ``api.outbox`` decides *when* to call ``Dispatcher.deliver``
and records what happened; this module decides *how*.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from notifications.sms import SmsChannel, SmsDeliveryError
from notifications.templates import TEMPLATES, TemplateError, render
from notifications.wechat import WeChatDeliveryError, WeChatSubscribeChannel

__all__ = ["Delivered", "DeliveryFailedError", "Dispatcher", "Recipient", "RetryPolicy"]


@dataclass(frozen=True)
class Recipient:
    phone: str | None = None
    openid: str | None = None


@dataclass(frozen=True)
class Delivered:
    channel: str  # "sms" or "wechat"
    provider_id: str
    note: str = ""  # e.g. why WeChat was skipped


class DeliveryFailedError(Exception):
    def __init__(self, code: str, detail: str, *, retryable: bool, channel: str) -> None:
        super().__init__(f"{channel} {code}: {detail}")
        self.code = code
        self.detail = detail
        self.retryable = retryable
        self.channel = channel


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between d/2 and d, d = base·2^(n-1),
    capped; after ``max_attempts`` the message is dead and waits for a person."""

    base: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(hours=1)
    max_attempts: int = 8

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        rng = rng or random.SystemRandom()
        ceiling = min(self.cap, self.base * (2 ** max(attempt - 1, 0)))
        half = ceiling / 2
        return half + half * rng.random()


class Dispatcher:
    def __init__(self, sms: SmsChannel, wechat: WeChatSubscribeChannel | None = None) -> None:
        self.sms = sms
        self.wechat = wechat

    async def deliver(
        self, message_id: str, template_key: str, params: dict[str, Any], recipient: Recipient
    ) -> Delivered:
        """Deliver once or raise ``DeliveryFailedError``. ``message_id`` makes retries idempotent
        at the SMS gateway (it is the gateway's request id)."""
        try:
            rendered = render(template_key, params)
        except TemplateError as exc:
            raise DeliveryFailedError(
                "TEMPLATE", str(exc), retryable=False, channel="none"
            ) from None
        template = TEMPLATES[template_key]
        note = ""
        if (
            not template.urgent
            and template.wechat is not None
            and rendered.wechat_data is not None
            and recipient.openid
            and self.wechat is not None
        ):
            try:
                receipt = await self.wechat.send(
                    recipient.openid,
                    template.wechat.template_id,
                    template.wechat.page,
                    rendered.wechat_data,
                )
                return Delivered(channel="wechat", provider_id=receipt.msgid)
            except WeChatDeliveryError as exc:
                if exc.retryable and not recipient.phone:
                    raise DeliveryFailedError(
                        exc.code, str(exc), retryable=True, channel="wechat"
                    ) from None
                # Refused subscriptions, unknown openids, and even our own bad data: the
                # person still has to hear about their contract, so SMS takes over.
                note = f"微信未送达（{exc.code}），改发短信"
        if not recipient.phone:
            raise DeliveryFailedError(
                "NO_CHANNEL", "no phone and no usable openid", retryable=False, channel="none"
            )
        try:
            sms = await self.sms.send(
                recipient.phone,
                rendered.text,
                template=template_key,
                params=rendered.params,
                request_id=message_id,
            )
        except SmsDeliveryError as exc:
            raise DeliveryFailedError(
                exc.code, exc.message, retryable=exc.retryable, channel="sms"
            ) from None
        return Delivered(channel="sms", provider_id=sms.message_id, note=note)
