"""Engine and session factories for the configured database.

``Database.writer`` sessions take SQLite's write lock when their transaction begins
(``BEGIN IMMEDIATE``) so concurrent writers queue on ``busy_timeout`` instead of failing
with SQLITE_BUSY when a read transaction tries to upgrade; ``Database.reader`` sessions
begin deferred so readers never wait for writers (WAL). On PostgreSQL both are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError, MissingGreenlet, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.util import await_only

from api.db import sqlite_driver
from api.settings import Settings


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    reader: async_sessionmaker[AsyncSession]
    writer: async_sessionmaker[AsyncSession]

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_database(settings: Settings) -> Database:
    engine = create_engine(settings)
    writer_engine = engine.execution_options(sqlite_begin="IMMEDIATE")
    return Database(
        engine=engine,
        reader=async_sessionmaker(engine, expire_on_commit=False),
        writer=async_sessionmaker(writer_engine, expire_on_commit=False),
    )


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        private_sqlite_file(settings)
        # aiosqlite with one trip to its thread per statement (api.db.sqlite_driver)
        url = url.replace("sqlite+aiosqlite://", f"sqlite+{sqlite_driver.DRIVER}://", 1)
        engine = _create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        event.listen(engine.sync_engine, "commit", _release_writer)
        event.listen(engine.sync_engine, "rollback", _release_writer)
        return engine
    engine = _create_async_engine(url, pool_size=10, max_overflow=10)
    event.listen(engine.sync_engine.pool, "connect", _idle_from_now)
    event.listen(engine.sync_engine.pool, "checkin", _idle_from_now)
    event.listen(engine.sync_engine.pool, "checkout", _check_out_alive)
    return engine


# A PostgreSQL connection is checked as it leaves the pool, as SQLAlchemy's pool_pre_ping
# would, but without a round trip when it can be: one the server closed (a restart, a
# failover, pg_terminate_backend, an idle timeout) is seen closed by asyncpg as soon as the
# loop reads the end of its socket; only one idle longer than this, which could sit behind
# a route that dropped it silently, is pinged. pool_pre_ping pinged at every checkout, three
# round trips (BEGIN, a statement, ROLLBACK): on launch day a tenth of the workers' writes
# to PostgreSQL (py-spy).
PING_AFTER_IDLE_SECONDS = 30.0
_monotonic = time.monotonic  # tests move it


def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:
    record.info["wangqian_idle_since"] = _monotonic()


def _check_out_alive(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Raising DisconnectionError has the pool drop this connection and hand out another."""
    idle_since = record.info.pop("wangqian_idle_since", None)
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("closed by the server")
    if idle_since is None or _monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise DisconnectionError("no answer to a ping") from error


def private_sqlite_file(settings: Settings) -> None:
    """The embedded database holds everyone's (encrypted) data: like the key files it is
    readable by its owner only (0600), made so before SQLite first opens it (SQLite gives
    its -wal and -shm files the database file's permissions)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "wangqian.db"
    if settings.database_url:  # an explicit SQLite URL names its own file
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from pysqlite: it defers BEGIN in ways that
    # defeat both SAVEPOINTs and our BEGIN IMMEDIATE for writers.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    if mode == "IMMEDIATE":
        _queue_writer(connection)
    try:
        connection.exec_driver_sql(f"BEGIN {mode}")
    except BaseException:
        _release_writer(connection)
        raise


# SQLite lets one writer in at a time; the others wait in its busy handler, which sleeps in
# steps of up to 100 ms and so lets the write lock sit idle while dozens of writers doze
# (py-spy under wrk: bank webhooks at 60/s with the process mostly asleep). Writers of
# one process queue here instead, in order, and each goes in as soon as the last one
# commits; writers of other processes still meet in SQLite's busy handler.
WRITER_QUEUE_SECONDS = 30  # as long as busy_timeout: a writer never waits longer than before


def _queue_writer(connection: Any) -> None:
    engine = connection.engine
    lock = getattr(engine, "_wangqian_writers", None)
    if lock is None:
        lock = engine._wangqian_writers = asyncio.Lock()
    try:
        await_only(asyncio.wait_for(lock.acquire(), WRITER_QUEUE_SECONDS))
    except TimeoutError:
        raise OperationalError("BEGIN IMMEDIATE", None, TimeoutError("writer queue")) from None
    except MissingGreenlet:  # not under an AsyncEngine: SQLite's busy handler alone
        return
    connection.info["wangqian_writer"] = lock


def _release_writer(connection: Any, *_: Any) -> None:
    lock = connection.info.pop("wangqian_writer", None)
    if lock is not None:
        lock.release()


async def commit_and_raise(session: AsyncSession, refusal: Exception) -> NoReturn:
    """Keep what a refused attempt recorded, then refuse. The request's session rolls back
    on any error, yet some refusals must leave a trace: a wrong SMS code counts, a refused
    scan is in the timeline, an expiry found on access is kept."""
    await session.commit()
    raise refusal


def insert_into(session: AsyncSession, model: type[DeclarativeBase] | Table) -> Any:
    """An INSERT for this session's dialect, so ``on_conflict_do_nothing`` and
    ``on_conflict_do_update`` are at hand on SQLite and PostgreSQL alike (an IntegrityError
    caught instead would spoil a PostgreSQL transaction)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)
