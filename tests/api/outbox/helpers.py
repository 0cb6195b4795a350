"""Reading queued messages in tests: whom a message goes to (the phone is stored encrypted)."""

from __future__ import annotations

from api.core.keys import RECIPIENT_PHONE, ServiceKeys
from api.outbox.models import OutboxMessage


def recipient(keys: ServiceKeys, message: OutboxMessage) -> str | None:
    """The phone a message is sent to, or None for a WeChat message (openid only)."""
    token = message.recipient_phone_encrypted
    return keys.phone(token, field=RECIPIENT_PHONE) if token else None
