"""PostgreSQL connections leaving the pool (api.db.engine): one the server closed is
replaced without a round trip, one idle for long is pinged first, and nobody sees the
dead one. The embedded SQLite has no server to lose: the PostgreSQL pass runs these."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from api.db import engine as engine_module
from api.db.engine import PING_AFTER_IDLE_SECONDS, create_engine
from api.settings import Settings
from tests.conftest import PG_URL, TEST_SECRET

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="a PostgreSQL server's connections: the PostgreSQL pass runs these"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(engine_module, "_monotonic", clock)
    return clock


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The backend pid of each connection pinged."""
    pinged: list[int] = []
    ping = AsyncAdapt_asyncpg_connection.ping

    def counted(self: AsyncAdapt_asyncpg_connection) -> None:
        pinged.append(self._connection.get_server_pid())
        ping(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    return pinged


def _engine(tmp_path: Path, url: str) -> AsyncEngine:
    return create_engine(
        Settings(data_dir=tmp_path, secret_key=TEST_SECRET, log_json=False, database_url=url)
    )


@pytest.fixture
async def engine(tmp_path: Path, pg_run_url: str) -> AsyncIterator[AsyncEngine]:
    engine = _engine(tmp_path, pg_run_url)
    yield engine
    await engine.dispose()


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_the_server_closed_is_replaced_without_a_ping(
    engine: AsyncEngine, tmp_path: Path, pg_run_url: str, clock: Clock, pings: list[int]
) -> None:
    first = await _backend(engine)
    other = _engine(tmp_path, pg_run_url)
    try:  # as a restart or an administrator would, while the connection idles in the pool
        async with other.connect() as conn:
            ended = text("SELECT pg_terminate_backend(:p)")
            assert (await conn.execute(ended, {"p": first})).scalar_one()
    finally:
        await other.dispose()
    for _ in range(50):  # the loop reads the end of the connection's socket
        await asyncio.sleep(0.01)
    second = await _backend(engine)
    assert second != first
    assert await _backend(engine) == second
    assert pings == []  # every checkout was of a connection used a moment before


async def test_a_connection_used_lately_is_not_pinged_one_idle_for_long_is(
    engine: AsyncEngine, clock: Clock, pings: list[int]
) -> None:
    first = await _backend(engine)
    clock.now += PING_AFTER_IDLE_SECONDS - 1
    assert await _backend(engine) == first
    assert pings == []
    clock.now += PING_AFTER_IDLE_SECONDS + 1
    assert await _backend(engine) == first
    assert pings == [first]


async def test_a_connection_that_does_not_answer_its_ping_is_replaced(
    engine: AsyncEngine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _backend(engine)
    refused: list[int] = []

    def silent(self: AsyncAdapt_asyncpg_connection) -> None:
        pid = self._connection.get_server_pid()
        if pid == first:
            refused.append(pid)
            raise ConnectionResetError("no answer")

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", silent)
    clock.now += PING_AFTER_IDLE_SECONDS + 1
    second = await _backend(engine)
    assert refused == [first]
    assert second != first
