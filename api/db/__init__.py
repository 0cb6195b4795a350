"""Persistence: the engine and sessions, the declarative ``Base``, and Alembic migrations
(the only way the schema is made, on SQLite and PostgreSQL alike); ``sqlite_driver`` is the
embedded database's driver (aiosqlite, one trip to its thread per statement)."""
