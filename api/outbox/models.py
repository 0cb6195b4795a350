"""Outbox tables. Rows are never deleted: the delivery log is the history."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db.base import Base, HasId


class MessageStatus(enum.StrEnum):
    pending = "pending"  # waiting for its next attempt
    sending = "sending"  # claimed by a worker until locked_until
    sent = "sent"
    dead = "dead"  # out of attempts or undeliverable; staff may retry


class OutboxMessage(HasId, Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        Index("ix_outbox_messages_recipient_sent", "recipient_phone_index", "sent_at"),
        Index("ix_outbox_messages_provider_id", "provider_id"),
    )

    # (event, recipient, template): the same event never messages the same person twice.
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    template: Mapped[str] = mapped_column(String(64))
    # Encrypted (a contract password travels here); purged once the message is sent.
    params_encrypted: Mapped[str | None] = mapped_column(Text)
    # The phone: keyed index (the per-recipient throttle), encrypted (to send), masked (log).
    recipient_phone_index: Mapped[str | None] = mapped_column(String(64))
    recipient_phone_encrypted: Mapped[str | None] = mapped_column(String(200))
    recipient_phone_masked: Mapped[str | None] = mapped_column(String(16))
    recipient_openid: Mapped[str | None] = mapped_column(String(64))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id"), index=True)
    contract_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    status: Mapped[MessageStatus] = mapped_column(
        Enum(MessageStatus, name="message_status", native_enum=False, length=16)
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(String(500))
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # A send that may have reached the provider (a timeout): since when its outcome is
    # unknown. The worker asks the provider before any resend (neither de-duplicates).
    outcome_unknown_since: Mapped[datetime | None]
    # The handset's receipt, from the provider's callback or a status query.
    delivery_status: Mapped[str | None] = mapped_column(String(16))  # delivered, failed
    delivered_at: Mapped[datetime | None]


class DeliveryAttempt(HasId, Base):
    __tablename__ = "outbox_delivery_attempts"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbox_messages.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))  # sent, retry, unknown, dead, manual_retry,
    # delivered, undelivered (receipts)
    error_code: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime]
