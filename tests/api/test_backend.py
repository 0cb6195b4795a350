"""Guards that the suite really runs on the database CI asked for."""

import os

import httpx


async def test_the_requested_database_is_the_one_in_use(client: httpx.AsyncClient) -> None:
    expected = "postgresql" if os.environ.get("WANGQIAN_TEST_DATABASE_URL") else "sqlite"
    assert (await client.get("/readyz")).json()["database"] == expected
