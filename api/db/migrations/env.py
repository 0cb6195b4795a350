"""Alembic environment: runs migrations over the async engine of the configured database.

The migrations are written by hand and need no models. For autogenerate, a caller puts
the models' metadata (``api.tables.metadata``) in ``config.attributes["target_metadata"]``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from api.db.engine import create_engine
from api.settings import Settings


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=context.config.attributes.get("target_metadata"),
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


settings = context.config.attributes.get("settings") or Settings.from_env(
    database_url=context.config.get_main_option("sqlalchemy.url")
)
asyncio.run(_run_async(settings))
