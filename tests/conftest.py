"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when
``WANGQIAN_TEST_DATABASE_URL`` is set), a movable clock, and the app under test."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database, create_database
from api.db.migrate import upgrade
from api.settings import Settings
from api.tables import metadata

PG_URL = os.environ.get("WANGQIAN_TEST_DATABASE_URL", "")
TEST_SECRET = "test-master-secret-" + "x" * 40  # tests only; never a deployment's
# Monday 23 November 2026, 10:00 in Shanghai.
START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def pytest_report_header() -> str:
    return f"wangqian database: {'postgresql' if PG_URL else 'sqlite'}"


@pytest.fixture(scope="session")
def pg_run_url() -> Iterator[str]:
    """PostgreSQL: a database of this run's own, made next to the one named by
    ``WANGQIAN_TEST_DATABASE_URL`` and dropped at the end, so two runs on one server
    (two engineers, or CI beside a developer) never truncate each other's tables."""
    if not PG_URL:
        yield ""
        return
    base = make_url(PG_URL)
    name = f"{base.database}_run_{os.getpid()}_{secrets.token_hex(3)}"
    _admin(PG_URL, f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(url: str, statement: str) -> None:
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(statement))
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory, pg_run_url: str) -> Path | None:
    """SQLite: a migrated database file copied per test. PostgreSQL: migrate once."""
    if pg_run_url:
        upgrade(Settings(database_url=pg_run_url))
        return None
    template_dir = tmp_path_factory.mktemp("template")
    upgrade(Settings(data_dir=template_dir))
    return template_dir / "wangqian.db"


@pytest.fixture
def settings(tmp_path: Path, migrated_template: Path | None, pg_run_url: str) -> Iterator[Settings]:
    if pg_run_url:
        yield Settings(
            data_dir=tmp_path, database_url=pg_run_url, secret_key=TEST_SECRET, log_json=False
        )
        _truncate_postgres(pg_run_url)
        return
    assert migrated_template is not None
    shutil.copy(migrated_template, tmp_path / "wangqian.db")
    yield Settings(data_dir=tmp_path, secret_key=TEST_SECRET, log_json=False)


def _truncate_postgres(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    _admin(url, f"TRUNCATE {tables} CASCADE")


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


@pytest.fixture
def keys(settings: Settings) -> ServiceKeys:
    return ServiceKeys.from_master(settings.master_secret())


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = create_database(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def session(database: Database) -> AsyncIterator[AsyncSession]:
    """A writer session for arranging data; call ``await session.commit()`` to publish."""
    async with database.writer() as session:
        yield session


@pytest.fixture
def app(settings: Settings, clock: MovableClock, database: Database) -> Litestar:
    return create_app(settings, clock=clock, database=database)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Calls the app in the test's own event loop (Litestar's AsyncTestClient runs it in
    another thread's loop, which asyncpg connections cannot cross)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def mock_settings(settings: Settings) -> Settings:
    """Settings with the mock outside services mounted under http://testserver/mock."""
    return msgspec.structs.replace(
        settings, mocks_enabled=True, public_base_url="http://testserver"
    )


@pytest.fixture
def mock_app(mock_settings: Settings, clock: MovableClock, database: Database) -> Litestar:
    """An app with mocks enabled whose outbound calls (WeChat, SMS, identity, face) go
    back into the same app in process: http://testserver/mock/... without sockets. The
    mocks run on the test's movable clock."""
    loopback = httpx.ASGITransport(app=None)  # type: ignore[arg-type]  # set just below
    app = create_app(mock_settings, clock=clock, database=database, http_transport=loopback)
    loopback.app = app
    return app


@pytest.fixture
async def mock_client(mock_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=mock_app), base_url="http://testserver"
    ) as client:
        yield client
