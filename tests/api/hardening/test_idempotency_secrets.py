"""Finding 1 of the outside review: the idempotency store kept a new TOTP secret in clear
for 24 h and replayed it to a logged-out token. Answers with secrets are never stored; a
replay needs the same authenticated principal; anonymous requests keep no record; expired
records are purged."""

from __future__ import annotations

import secrets
from datetime import timedelta

import httpx
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.idempotency import IdempotencyRecord
from api.core.keys import ServiceKeys
from api.db.engine import Database
from tests.api.contracts.helpers import AGENT, ZHANG, create, demo, order_body, problem
from tests.api.identity.helpers import bearer, login_phone


async def _records(database: Database) -> list[IdempotencyRecord]:
    async with database.reader() as session:
        return list(await session.scalars(select(IdempotencyRecord)))


async def test_a_new_totp_secret_is_never_stored_nor_replayed(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    key = {"Idempotency-Key": "totp-1"}
    enrolled = await mock_client.post("/api/v1/me/totp", headers={**bearer(d.seal_keeper), **key})
    assert enrolled.status_code == 200
    assert "no-store" in enrolled.headers["cache-control"]
    secret = enrolled.json()["secret"]
    assert all(secret.encode() not in (r.response_body or b"") for r in await _records(database))

    # Logged out, the token replays nothing: it is refused before the store is asked.
    assert (
        await mock_client.post("/api/v1/auth/logout", headers=bearer(d.seal_keeper))
    ).status_code == 204
    replay = await mock_client.post("/api/v1/me/totp", headers={**bearer(d.seal_keeper), **key})
    assert problem(replay) == (401, "session_invalid")
    assert secret not in replay.text


async def test_a_replay_needs_the_same_principal(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    body = order_body(d.units["201"], ZHANG)
    key = {"Idempotency-Key": "order-1"}
    first = await mock_client.post(
        "/api/v1/contracts", json=body, headers={**bearer(d.agent), **key}
    )
    assert first.status_code == 201, first.text
    # The same agent under a new login replays the answer.
    clock.advance(timedelta(seconds=61))
    again = await login_phone(mock_client, AGENT.phone)
    replayed = await mock_client.post(
        "/api/v1/contracts", json=body, headers={**bearer(again), **key}
    )
    assert replayed.headers.get("idempotent-replayed") == "true"
    assert replayed.json()["id"] == first.json()["id"]
    # A logged-out token gets nothing.
    await mock_client.post("/api/v1/auth/logout", headers=bearer(d.agent))
    stale = await mock_client.post(
        "/api/v1/contracts", json=body, headers={**bearer(d.agent), **key}
    )
    assert problem(stale) == (401, "session_invalid")
    # Another person with the same key and body runs their own request.
    citizen = await login_phone(mock_client, ZHANG.phone)
    other = await mock_client.post(
        "/api/v1/contracts", json=body, headers={**bearer(citizen), **key}
    )
    assert problem(other) == (403, "staff_only")
    assert "idempotent-replayed" not in other.headers


async def test_anonymous_requests_create_no_records(
    mock_client: httpx.AsyncClient, database: Database, clock: MovableClock
) -> None:
    for i in range(20):
        clock.advance(timedelta(seconds=61))
        sent = await mock_client.post(
            "/api/v1/auth/sms/send",
            json={"phone": f"1370000{i:04d}"},
            headers={"Idempotency-Key": secrets.token_hex(8)},
        )
        assert sent.status_code == 200, sent.text
    assert await _records(database) == []


async def test_expired_records_are_purged(
    mock_app: Litestar,
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    created = await create(mock_client, d.agent, order_body(d.units["201"], ZHANG))
    assert created.status_code == 201
    for room in ("202", "301"):
        answer = await mock_client.post(
            "/api/v1/contracts",
            json=order_body(d.units[room], ZHANG),
            headers={**bearer(d.agent), "Idempotency-Key": f"k-{room}"},
        )
        assert answer.status_code in (201, 409), answer.text
    assert len(await _records(database)) == 2
    purge = next(
        j for j in mock_app.state.outbox.periodic if j.__name__ == "purge_idempotency_records"
    )
    clock.advance(timedelta(hours=23))
    await purge()
    assert len(await _records(database)) == 2  # still inside their 24 hours
    clock.advance(timedelta(hours=1, seconds=1))
    await purge()
    async with database.reader() as reader:
        assert await reader.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
