"""Delivery log answers: what was sent to whom (masked), how, and how it went."""

from __future__ import annotations

from datetime import datetime

from api.core.schemas import Page, ResponseBody
from api.outbox.models import MessageStatus


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


class NotificationPage(Page):
    items: list[NotificationEntry]
