"""SQLAlchemy's aiosqlite dialect with one trip to the database thread per statement.

aiosqlite runs sqlite3 in a thread of its own, and SQLAlchemy's adapter makes four trips
there for each statement (open a cursor, execute, fetch the rows, close it): each trip is
a hand-over from the event loop to that thread and back, which waits for the loop's turn
when it is busy. py-spy under wrk showed a group of bank payments (about ten statements)
spending most of its time in those hand-overs while SQLite's own work took a few
milliseconds. Here a statement's cursor is opened, executed, read and closed in one
function run in aiosqlite's thread. Written by hand because neither aiosqlite nor
SQLAlchemy offers it; it leans on two private names, aiosqlite's ``Connection._execute``
(queue a function for its thread) and ``_conn`` (the sqlite3 connection), which the
SQLAlchemy dialect itself uses too; ``tests/api/db/test_sqlite_driver.py`` notices if they
go away. Server-side cursors (streamed results) keep aiosqlite's own cursor.

Use ``sqlite+wangqian_aiosqlite://`` (``api.db.engine.create_engine`` does).
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)

DRIVER = "wangqian_aiosqlite"

_Outcome = tuple[Any, int, int | None, list[Any]]


def _run_statement(conn: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """In aiosqlite's thread: the statement's description, rowcount, lastrowid and rows."""
    cursor = conn.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def _run_many(conn: sqlite3.Connection, operation: str, seq_of_parameters: Any) -> _Outcome:
    cursor = conn.cursor()
    try:
        cursor.executemany(operation, seq_of_parameters)
        return cursor.description, cursor.rowcount, cursor.lastrowid, []
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statements each take one trip to aiosqlite's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    # There is no aiosqlite cursor to close: the thread closed its own.
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def _took(self, outcome: _Outcome) -> None:
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        async with self._adapt_connection._execute_mutex:
            conn = self._connection._conn
            self._took(await self._connection._execute(_run_statement, conn, operation, parameters))

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        async with self._adapt_connection._execute_mutex:
            conn = self._connection._conn
            outcome = await self._connection._execute(_run_many, conn, operation, seq_of_parameters)
            self._took(outcome)

    def nextset(self) -> None:
        self._rows.clear()  # sqlite3 has one result set per statement

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        # The parent connects (and marks aiosqlite's thread a daemon); ours wraps the same
        # aiosqlite connection with the one-trip cursor.
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


class OneTripDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneTripDBAPI:
        return OneTripDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "OneTripDialect")
