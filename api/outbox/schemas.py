"""Delivery log answers: what was sent to whom (masked), how, and how it went."""

from __future__ import annotations

from datetime import datetime

from api.core.schemas import Page, ResponseBody
from api.outbox.models import MessageStatus, OutboxMessage
from notifications.templates import TEMPLATES


class NotificationEntry(ResponseBody):
    id: str
    template: str
    title: str
    recipient: str  # masked phone, or "微信用户" when only an openid is known
    status: MessageStatus
    channel: str | None
    attempts: int
    last_error: str | None
    note: str | None
    contract_id: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None

    @classmethod
    def of(cls, message: OutboxMessage) -> NotificationEntry:
        template = TEMPLATES.get(message.template)
        pending = message.status == MessageStatus.pending
        return cls(
            id=str(message.id),
            template=message.template,
            title=template.title if template else message.template,
            recipient=message.recipient_phone_masked or "微信用户",
            status=message.status,
            channel=message.channel,
            attempts=message.attempts,
            last_error=message.last_error,
            note=message.note,
            contract_id=str(message.contract_id) if message.contract_id else None,
            created_at=message.created_at,
            next_attempt_at=message.next_attempt_at if pending else None,
            sent_at=message.sent_at,
        )


class NotificationPage(Page):
    items: list[NotificationEntry]
