"""Public identifiers: random and opaque, never sequential."""

from __future__ import annotations

import uuid

from api.core.errors import DomainError


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def parse_id(raw: str, *, what: str) -> uuid.UUID:
    """Parse an id from a URL; a malformed id is simply "not found" (404), not a 500."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise DomainError.not_found(what) from None
