"""The SQLite driver (api.db.sqlite_driver): aiosqlite with one trip to its thread per
statement, and otherwise the DB-API answers SQLAlchemy expects (rows, rowcount,
RETURNING, executemany, errors, streamed results). Runs on a SQLite file of its own in
both test passes: the embedded database is always SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from api.db import sqlite_driver
from api.db.engine import create_engine
from api.settings import Settings
from tests.conftest import TEST_SECRET


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(data_dir=tmp_path, secret_key=TEST_SECRET, log_json=False))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


async def test_the_embedded_database_uses_it(engine: AsyncEngine) -> None:
    assert engine.dialect.driver == sqlite_driver.DRIVER
    assert engine.dialect.name == "sqlite"


async def test_a_statement_takes_one_trip_to_the_database_thread(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    queue = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: object, *args: object) -> object:
        trips.append(getattr(fn, "__name__", "?"))
        return await queue(self, fn, *args)  # type: ignore[arg-type]

    async with engine.connect() as conn:
        await conn.execute(text("SELECT 0"))  # BEGIN is a statement (and a trip) of its own
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        rows = (await conn.execute(text("SELECT 1 UNION ALL SELECT 2"))).all()
        monkeypatch.undo()
    assert [tuple(r) for r in rows] == [(1,), (2,)]
    assert trips == ["_run_statement"]  # not cursor, execute, fetchall and close


async def test_rows_counts_returning_and_executemany(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        many = await conn.execute(
            text("INSERT INTO t (name) VALUES (:name)"), [{"name": n} for n in "abc"]
        )
        assert many.rowcount == 3
        one = await conn.execute(text("INSERT INTO t (name) VALUES ('d')"))
        assert one.lastrowid == 4
        returned = await conn.execute(
            text("UPDATE t SET name = name || '!' WHERE id > 2 RETURNING id, name")
        )
        assert sorted(tuple(r) for r in returned) == [(3, "c!"), (4, "d!")]
        updated = await conn.execute(text("UPDATE t SET name = upper(name) WHERE id < 3"))
        assert updated.rowcount == 2
        assert (await conn.execute(text("SELECT count(*) FROM t WHERE id > 99"))).scalar() == 0
        assert (await conn.execute(text("SELECT name FROM t WHERE id > 99"))).first() is None


async def test_an_error_is_sqlalchemys_and_the_connection_goes_on(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
        with pytest.raises(IntegrityError):
            await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
        await conn.rollback()
        await conn.execute(text("INSERT INTO t (name) VALUES ('y')"))
        await conn.commit()
    async with engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t ORDER BY name"))).scalars().all()
    assert names == ["y"]


async def test_streamed_results_keep_a_cursor_of_their_own(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO t (name) VALUES (:name)"), [{"name": f"n{i:03d}"} for i in range(250)]
        )
    async with engine.connect() as conn:
        streamed = await conn.stream(text("SELECT name FROM t ORDER BY id"))
        names = [row.name async for row in streamed]
    assert names == [f"n{i:03d}" for i in range(250)]
