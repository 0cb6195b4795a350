"""Finding 11 of the outside review (part): the SQLite database file was created 0644;
it is 0600 like the key files, its WAL files too, and an older 0644 file is tightened."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from sqlalchemy import text

from api.db.engine import create_database
from api.db.migrate import upgrade
from api.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # what a service usually runs with
    try:
        settings = Settings(data_dir=tmp_path, secret_key="x" * 40)
        upgrade(settings)

        async def write() -> None:
            database = create_database(settings)
            async with database.writer() as session, session.begin():
                await session.execute(text("CREATE TABLE probe (x INTEGER)"))
            await database.dispose()

        asyncio.run(write())
    finally:
        os.umask(old_umask)
    files = sorted(tmp_path.glob("wangqian.db*"))
    assert files and files[0].name == "wangqian.db"
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_an_existing_readable_database_is_tightened(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="x" * 40)
    upgrade(settings)
    (tmp_path / "wangqian.db").chmod(0o644)
    create_database(settings)
    assert _mode(tmp_path / "wangqian.db") == 0o600
