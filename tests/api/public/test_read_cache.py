"""Public reads come from the read cache: answers carry an ETag and are revalidated, and
a write that changes what the public sees is seen on the very next read (the version
counters are bumped in the write's own transaction), never a stale status."""

from __future__ import annotations

import gzip
from datetime import timedelta

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.core.read_cache import LocalBoard, Pin, ReadCache, accepts_gzip, not_modified
from api.core.versions import DataVersion, building_scope, contract_scope
from api.db.engine import Database
from api.tables import metadata
from tests.api.contracts.helpers import (
    LI,
    ZHANG,
    create_issued,
    demo,
    face_verified,
    scan,
    seal,
    sign,
)
from tests.api.contracts.test_filing import REGULATOR
from tests.api.identity.helpers import bearer, login_phone
from tests.api.identity.test_identity_migration import _tables


async def _status(client: httpx.AsyncClient, building: str, room: str) -> str:
    table = await client.get(f"/api/v1/public/buildings/{building}/units")
    assert table.status_code == 200, table.text
    return next(u["status"] for u in table.json()["units"] if u["room_no"] == room)


async def _counts(client: httpx.AsyncClient, building: str) -> dict[str, int]:
    page = await client.get("/api/v1/public/projects")
    assert page.status_code == 200, page.text
    return next(
        p["counts"] for p in page.json()["items"] if building in {b["id"] for b in p["buildings"]}
    )


async def test_etag_and_revalidation(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    url = f"/api/v1/public/buildings/{d.world['building']['id']}/units"
    first = await client.get(url)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, no-cache"
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert (await client.get(url, headers={"If-None-Match": '"other"'})).status_code == 200
    projects = await client.get("/api/v1/public/projects")
    assert projects.headers["cache-control"] == "public, no-cache"
    revalidated = await client.get(
        "/api/v1/public/projects", headers={"If-None-Match": f"W/{projects.headers['etag']}"}
    )
    assert revalidated.status_code == 304

    # A new order on a unit changes the table: another ETag, and the old one is refused.
    await create_issued(client, d, "201", ZHANG)
    changed = await client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert next(u for u in changed.json()["units"] if u["room_no"] == "201")["status"] == (
        "signing"
    )


async def test_phones_that_accept_gzip_get_a_table_compressed(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    url = f"/api/v1/public/buildings/{d.world['building']['id']}/units"
    plain = await client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    zipped = await client.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.json() == plain.json()  # httpx undoes the gzip
    assert int(zipped.headers["content-length"]) * 3 < len(plain.content)
    # Each representation has its own validator, and is revalidated against it.
    assert zipped.headers["etag"] != plain.headers["etag"]
    gz_etag = zipped.headers["etag"]
    again = await client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": gz_etag})
    assert again.status_code == 304 and again.headers["etag"] == gz_etag
    other = await client.get(url, headers={"Accept-Encoding": "identity", "If-None-Match": gz_etag})
    assert other.status_code == 200 and "content-encoding" not in other.headers
    refused = await client.get(url, headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers and refused.json() == plain.json()
    # A change is compressed anew: the next table is as fresh gzipped as it is plain.
    await create_issued(client, d, "201", ZHANG)
    changed = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert changed.headers["content-encoding"] == "gzip" and changed.headers["etag"] != gz_etag
    assert next(u for u in changed.json()["units"] if u["room_no"] == "201")["status"] == (
        "signing"
    )


def test_accept_encoding_weights() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("br, GZIP;q=0.5") and accepts_gzip("*")
    assert accepts_gzip("x-gzip") and accepts_gzip("identity, *;q=0.1")
    assert not accepts_gzip(None) and not accepts_gzip("") and not accepts_gzip("br, deflate")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("*;q=0")
    assert not accepts_gzip("gzip;q=x")
    assert not accepts_gzip("gzip;q=0, *;q=1")  # gzip named and refused: * does not bring it back


async def test_no_stale_status_through_signing_seal_and_filing(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    """Every step is read from the cache right before and right after: the clock does not
    move, so only the version counters can make the cache answer anew."""
    client = mock_client
    d = await demo(client, session, keys, clock)
    building = d.world["building"]["id"]
    assert await _status(client, building, "202") == "available"
    available = (await _counts(client, building))["available"]

    issued = await create_issued(client, d, "202", ZHANG, LI)
    order_id = issued["order"]["id"]
    assert await _status(client, building, "202") == "signing"
    assert (await _counts(client, building))["available"] == available - 1

    for buyer in (ZHANG, LI):
        token = await face_verified(client, buyer)
        assert (await scan(client, token, issued["scene"])).status_code == 200
        signed, _ = await sign(client, token, order_id, buyer.phone)
        assert signed.status_code == 200, signed.text
        assert await _status(client, building, "202") == "signing"
    sealed = await seal(client, d, order_id)
    assert sealed.status_code == 200, sealed.text
    assert await _status(client, building, "202") == "signed"
    assert (await _counts(client, building))["signed"] >= 1

    number, password = sealed.json()["contract_number"], sealed.json()["password"]
    verify = {"number": number, "password": password}
    first = await client.get("/api/v1/public/verify", params=verify)
    assert first.json()["genuine"] is True and first.json()["status"] == "filing_pending"
    assert first.headers["cache-control"] == "no-store" and "etag" not in first.headers

    # The counters moved in the same transactions as the writes.
    async with database.reader() as reader:
        versions = dict(
            (
                await reader.execute(
                    select(DataVersion.scope, DataVersion.version).where(
                        DataVersion.scope.in_([building_scope(building), contract_scope(order_id)])
                    )
                )
            ).all()
        )
    assert versions[building_scope(building)] >= 4  # create, issue, signatures, seal
    assert versions[contract_scope(order_id)] >= 3

    regulator = bearer(await login_phone(client, REGULATOR.phone))
    approved = await client.post(f"/api/v1/contracts/{order_id}/filing/approve", headers=regulator)
    assert approved.status_code == 200, approved.text
    assert await _status(client, building, "202") == "filed"
    filed = (await client.get("/api/v1/public/verify", params=verify)).json()
    assert filed["status"] == "filed" and filed["filing_number"]
    by_filing = await client.get(
        "/api/v1/public/verify", params={"number": filed["filing_number"], "password": password}
    )
    assert by_filing.json()["genuine"] is True

    # A wrong password is never answered from a cached genuine answer.
    wrong = await client.get("/api/v1/public/verify", params={**verify, "password": "00000000"})
    assert wrong.json()["genuine"] is False


async def test_a_commit_in_another_process_is_seen_once_answers_age(
    database: Database, session: AsyncSession, clock: MovableClock
) -> None:
    """Without a shared board (no Redis), another process's commit reaches this one's
    answers when they are older than fresh_seconds: the answer pins the versions it read."""
    board = LocalBoard()  # this process's board, which the other process cannot raise
    cache = ReadCache(database, board, clock, fresh_seconds=5)
    renders = 0

    async def render(db: AsyncSession, pin: Pin) -> tuple[bytes, bool]:
        nonlocal renders
        renders += 1
        await pin(["building:x"])
        return b"{}", True

    first = await cache.fetch("k", render)
    assert (await cache.fetch("k", render)) is first and renders == 1
    # "Another process" bumps the counter: this board does not hear of it.
    session.add(DataVersion(scope="building:x", version=7))
    await session.commit()
    assert (await cache.fetch("k", render)) is first
    clock.advance(timedelta(seconds=6))
    fresh = await cache.fetch("k", render)
    assert renders == 2 and fresh.versions == (7,)
    # Published versions end the old answer at once.
    await cache.publish({"building:x": 8})
    assert (await cache.fetch("k", render)) is not fresh and renders == 3


def test_if_none_match_lists() -> None:
    assert not_modified('"a", W/"b"', '"b"')
    assert not_modified("*", '"b"')
    assert not not_modified('"a"', '"b"')
    assert not not_modified(None, '"b"')


async def test_data_versions_match_the_models(database: Database) -> None:
    """Migration 0020 creates what api.core.versions describes (SQLite and PostgreSQL)."""
    async with database.engine.connect() as connection:
        diffs = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    assert [d for d in diffs if _tables(d) & {"data_versions"}] == []


async def test_only_answers_sent_gzipped_are_kept_gzipped(
    database: Database, clock: MovableClock
) -> None:
    """Verify answers are never sent gzipped, so none is compressed; a public read's is,
    once per body (the same body rendered again once stale keeps the bytes made before)."""
    cache = ReadCache(database, LocalBoard(), clock, fresh_seconds=5)
    body = b'{"units": "' + b"x" * 4000 + b'"}'

    async def render(db: AsyncSession, pin: Pin) -> tuple[bytes, bool]:
        await pin(["building:gz"])
        return body, True

    plain = await cache.fetch("verify-like", render)
    assert plain.kept and plain.gzipped is None
    first = await cache.fetch("table", render, gzipped=True)
    assert first.gzipped is not None and gzip.decompress(first.gzipped) == body
    clock.advance(timedelta(seconds=6))
    again = await cache.fetch("table", render, gzipped=True)
    assert again.stored_at != first.stored_at and again.gzipped is first.gzipped
