"""Migrations 0004 and 0015 create exactly what the contract models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from api.db.engine import Database
from api.tables import metadata
from tests.api.identity.test_identity_migration import _tables

CONTRACT_TABLES = {
    "contract_orders",
    "contract_parties",
    "contract_signatures",
    "contract_events",
    "contract_counters",
    "contract_documents",  # 0015
    "contract_timestamps",  # 0015
}


async def test_contract_tables_match_the_models(database: Database) -> None:
    async with database.engine.connect() as connection:
        diffs = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    assert [d for d in diffs if _tables(d) & CONTRACT_TABLES] == []
