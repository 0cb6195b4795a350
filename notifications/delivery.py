"""Delivering one rendered message: channel choice, WeChat-to-SMS fallback, retry policy,
and what to do with a message whose last send may or may not have reached the provider.

No database here: the outbox in ``api.outbox`` decides *when* to call ``Dispatcher.deliver``
and records what happened; this module decides *how*.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from notifications.sms import SmsChannel, SmsDeliveryError
from notifications.templates import (
    TEMPLATES,
    RenderedMessage,
    TemplateError,
    render,
)
from notifications.wechat import WeChatDeliveryError, WeChatSubscribeChannel
from notifications.wechat_templates import WeChatTemplate, wechat_data

__all__ = ["Delivered", "DeliveryFailedError", "Dispatcher", "Recipient", "RetryPolicy"]

# How long a send whose outcome is unknown waits for the provider to say what became of it
# before a person has to decide (receipts usually come within seconds; a one-time code is
# useless after five minutes anyway).
RECEIPT_WINDOW = timedelta(minutes=10)


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
    """``unknown``: the send may have reached the provider; the message must not be sent
    again before the provider is asked."""

    def __init__(
        self, code: str, detail: str, *, retryable: bool, channel: str, unknown: bool = False
    ) -> None:
        super().__init__(f"{channel} {code}: {detail}")
        self.code = code
        self.detail = detail
        self.retryable = retryable or unknown
        self.channel = channel
        self.unknown = unknown


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
    def __init__(
        self,
        sms: SmsChannel,
        wechat: WeChatSubscribeChannel | None = None,
        wechat_templates: Mapping[str, WeChatTemplate] | None = None,
    ) -> None:
        self.sms = sms
        self.wechat = wechat
        self.wechat_templates = dict(wechat_templates or {})

    async def deliver(
        self,
        message_id: str,
        template_key: str,
        params: dict[str, Any],
        recipient: Recipient,
        *,
        unknown_since: datetime | None = None,
        now: datetime | None = None,
    ) -> Delivered:
        """Deliver once or raise ``DeliveryFailedError``. ``message_id`` is stored with the
        SMS provider (OutId, SessionContext) so that a send whose outcome was unknown
        (``unknown_since``) is looked up before it is ever sent again."""
        try:
            rendered = render(template_key, params)
        except TemplateError as exc:
            raise DeliveryFailedError(
                "TEMPLATE", str(exc), retryable=False, channel="none"
            ) from None
        note = ""
        configured = self.wechat_templates.get(template_key)
        if (
            not TEMPLATES[template_key].urgent
            and configured is not None
            and recipient.openid
            and self.wechat is not None
        ):
            try:
                return await self._wechat(recipient.openid, configured, rendered)
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
        if unknown_since is not None:
            found = await self._look_up(recipient.phone, message_id, unknown_since, now)
            if found is not None:
                return found
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
                exc.code, exc.message, retryable=exc.retryable, channel="sms", unknown=exc.unknown
            ) from None
        return Delivered(channel="sms", provider_id=sms.message_id, note=note)

    async def _wechat(
        self, openid: str, configured: WeChatTemplate, rendered: RenderedMessage
    ) -> Delivered:
        try:
            data = wechat_data(configured, rendered.values)
        except TemplateError as exc:
            raise WeChatDeliveryError(47003, str(exc)) from None
        receipt = await self.wechat.send(  # type: ignore[union-attr]
            openid, configured.template_id, configured.page, data
        )
        return Delivered(channel="wechat", provider_id=receipt.msgid)

    async def _look_up(
        self, phone: str, message_id: str, since: datetime, now: datetime | None
    ) -> Delivered | None:
        """After a send whose outcome is unknown: Delivered if the provider has it, None if
        it surely does not (send again), and a retryable failure while it cannot say."""
        found = await self.sms.status(phone, request_id=message_id, provider_id="", sent_at=since)
        if found.state in ("delivered", "pending"):
            return Delivered("sms", found.provider_id, note="发送超时，经向短信平台查询已受理")
        if found.state in ("failed", "absent"):
            return None
        if now is not None and now - since >= RECEIPT_WINDOW:
            raise DeliveryFailedError(
                "SMS_OUTCOME_UNKNOWN",
                "短信发送超时，短信平台至今未告知结果；为免重复发送，请核实后手动重发",
                retryable=False,
                channel="sms",
            )
        raise DeliveryFailedError(
            "SMS_OUTCOME_PENDING", "waiting for the provider to tell", retryable=True,
            channel="sms", unknown=True,
        )
