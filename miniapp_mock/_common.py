"""Helpers shared by the mock services: the clock type, bearer-key checks, id makers."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from litestar import Request

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def bearer_ok(request: Request, key: str) -> bool:
    """True if the request carries ``Authorization: Bearer <key>``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                              key.encode())


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def normalize_id_number(id_number: str) -> str:
    # The mock mirrors what a real provider does and shares no code with ours on purpose.
    return "".join(id_number.split()).upper()
