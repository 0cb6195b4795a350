"""Migrations 0002 and 0006 create exactly what the identity models describe (SQLite and
PostgreSQL)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from api.db.engine import Database
from api.tables import metadata

IDENTITY_TABLES = {
    "citizens",
    "staff_members",
    "staff_projects",
    "auth_sessions",
    "otp_challenges",
    "sms_sends",
    "face_sessions",
    "wechat_subscriptions",
}


def _tables(diff: Any) -> set[str]:
    found: set[str] = set()
    for item in diff if isinstance(diff, list) else [diff]:
        for part in item if isinstance(item, tuple) else (item,):
            name = getattr(part, "name", None) if not isinstance(part, str) else part
            table = getattr(part, "table", None)
            if table is not None:
                found.add(table.name)
            elif isinstance(name, str):
                found.add(name)
    return found


async def test_identity_tables_match_the_models(database: Database) -> None:
    async with database.engine.connect() as connection:
        diffs = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    ours = [d for d in diffs if _tables(d) & IDENTITY_TABLES]
    assert ours == []
