"""Shared pieces of the mock-service tests (a module name unlikely to clash elsewhere)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ZHANG_ID = "44010119900101123X"


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
