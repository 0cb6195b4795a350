"""Time. Stored in UTC; business days follow Asia/Shanghai.

Services take a ``Clock`` so tests move time instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class MovableClock:
    """A clock for tests and demos: it stands still until moved."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("MovableClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(UTC)


def business_date(instant: datetime) -> date:
    """The calendar date in Shanghai at that instant."""
    return instant.astimezone(SHANGHAI).date()


def end_of_next_natural_day(instant: datetime) -> datetime:
    """End of the next natural day (Shanghai), in UTC: the expiry rule of seed 004.

    An order issued at 23:59 on Monday lives until Tuesday 24:00 local time.
    """
    next_day = business_date(instant) + timedelta(days=1)
    local_end = datetime.combine(next_day + timedelta(days=1), time.min, tzinfo=SHANGHAI)
    return local_end.astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """Normalise a datetime read back from the database (SQLite drops tzinfo)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
