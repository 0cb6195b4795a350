from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.core.clock import MovableClock, end_of_next_natural_day
from api.settings import Settings


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "WANGQIAN_DATA_DIR": "/srv/wq",
            "WANGQIAN_MOCKS_ENABLED": "true",
            "WANGQIAN_IDEMPOTENCY_TTL_SECONDS": "60",
            "UNRELATED": "x",
        }
    )
    assert settings.data_dir == Path("/srv/wq")
    assert settings.mocks_enabled is True and settings.idempotency_ttl_seconds == 60
    assert settings.effective_database_url == "sqlite+aiosqlite:////srv/wq/wangqian.db"
    pg = Settings.from_env({"WANGQIAN_DATABASE_URL": "postgresql+asyncpg://u@h/db"})
    assert pg.effective_database_url == "postgresql+asyncpg://u@h/db" and not pg.is_sqlite


def test_bad_settings_are_refused() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError):
        Settings.from_env({"WANGQIAN_IDEMPOTENCY_TTL_SECONDS": "soon"})


def test_master_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = settings.master_secret()
    assert len(first) >= 32 and settings.master_secret() == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("issued_utc", "expires_utc"),
    [
        # Monday 10:00 Shanghai -> end of Tuesday Shanghai = Tuesday 16:00 UTC.
        (datetime(2026, 11, 23, 2, 0, tzinfo=UTC), datetime(2026, 11, 24, 16, 0, tzinfo=UTC)),
        # Monday 23:59 Shanghai (15:59 UTC) -> still end of Tuesday.
        (datetime(2026, 11, 23, 15, 59, tzinfo=UTC), datetime(2026, 11, 24, 16, 0, tzinfo=UTC)),
        # Tuesday 00:01 Shanghai (Monday 16:01 UTC) -> end of Wednesday.
        (datetime(2026, 11, 23, 16, 1, tzinfo=UTC), datetime(2026, 11, 25, 16, 0, tzinfo=UTC)),
    ],
)
def test_end_of_next_natural_day_follows_shanghai(
    issued_utc: datetime, expires_utc: datetime
) -> None:
    assert end_of_next_natural_day(issued_utc) == expires_utc


def test_movable_clock() -> None:
    clock = MovableClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.advance(timedelta(minutes=5))
    assert clock.now() == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    with pytest.raises(ValueError):
        MovableClock(datetime(2026, 1, 1))
