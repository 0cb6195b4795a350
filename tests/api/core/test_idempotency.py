"""Idempotency-Key: replay, refusal of reuse with another body, locks and expiry.

The mechanism is exercised through a small app whose POST handler writes a company
through the register service, so "executed twice" is visible in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.middleware.base import DefineMiddleware
from litestar.params import JSONBody
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import provide_db
from api.core.clock import MovableClock
from api.core.idempotency import IdempotencyMiddleware, IdempotencyRecord
from api.core.problems import EXCEPTION_HANDLERS
from api.core.schemas import RequestBody
from api.db.engine import Database
from api.register import service as register
from api.register.models import Company
from tests.api.world import USCC


class NewCompany(RequestBody):
    name: str
    uscc: str


class StandInAuthentication:
    """The app's authentication, reduced: ``Bearer <name>`` makes the caller <name>."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers", []))
        scheme, _, name = headers.get(b"authorization", b"").decode().partition(" ")
        if scheme == "Bearer" and name:
            scope["user"] = name
        await self.app(scope, receive, send)


AUTH = {"Authorization": "Bearer a"}


@pytest.fixture
async def client(database: Database, clock: MovableClock) -> AsyncIterator[httpx.AsyncClient]:
    calls = {"n": 0}

    @post("/companies")
    async def create(
        data: JSONBody[NewCompany], db: NamedDependency[AsyncSession]
    ) -> dict[str, Any]:
        calls["n"] += 1
        if data.name == "boom":
            raise RuntimeError("a bug")
        company = await register.create_company(db, name=data.name, uscc=data.uscc, now=clock.now())
        return {"id": str(company.id), "call": calls["n"]}

    app = Litestar(
        route_handlers=[create],
        dependencies={"db": Provide(provide_db)},
        state=State({"database": database}),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            StandInAuthentication,
            DefineMiddleware(
                IdempotencyMiddleware,
                database=database,
                clock=clock,
                ttl=3600,
                lock_seconds=60,
                caller=lambda scope: scope.get("user"),
            ),
        ],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


async def _companies(database: Database) -> int:
    async with database.reader() as session:
        return await session.scalar(select(func.count()).select_from(Company)) or 0


BODY = {"name": "幂等置业", "uscc": USCC}


async def test_same_key_same_body_replays_the_first_answer(
    client: httpx.AsyncClient, database: Database
) -> None:
    first = await client.post("/companies", json=BODY, headers={**AUTH, "Idempotency-Key": "k1"})
    second = await client.post("/companies", json=BODY, headers={**AUTH, "Idempotency-Key": "k1"})
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert await _companies(database) == 1


async def test_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, database: Database
) -> None:
    await client.post("/companies", json=BODY, headers={**AUTH, "Idempotency-Key": "k2"})
    other = await client.post(
        "/companies", json={**BODY, "name": "别的公司"}, headers={**AUTH, "Idempotency-Key": "k2"}
    )
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["code"] == "idempotency_key_reused"
    assert await _companies(database) == 1


async def test_keys_are_per_caller(client: httpx.AsyncClient) -> None:
    a = await client.post(
        "/companies", json=BODY, headers={"Idempotency-Key": "k3", "Authorization": "Bearer a"}
    )
    b = await client.post(
        "/companies", json=BODY, headers={"Idempotency-Key": "k3", "Authorization": "Bearer b"}
    )
    assert a.status_code == 201
    # Caller b's request really ran: it met the company a created.
    assert b.status_code == 409 and b.json()["code"] == "company_exists"


async def test_refusals_are_replayed_too(client: httpx.AsyncClient, database: Database) -> None:
    bad = {"name": "坏代码", "uscc": "91350100M000100Y44"}
    first = await client.post("/companies", json=bad, headers={**AUTH, "Idempotency-Key": "k4"})
    second = await client.post("/companies", json=bad, headers={**AUTH, "Idempotency-Key": "k4"})
    assert first.status_code == second.status_code == 422
    assert first.json()["code"] == "uscc_invalid"
    assert second.content == first.content and second.headers["idempotent-replayed"] == "true"


async def test_a_server_error_releases_the_key(
    client: httpx.AsyncClient, database: Database
) -> None:
    boom = {"name": "boom", "uscc": USCC}
    first = await client.post("/companies", json=boom, headers={**AUTH, "Idempotency-Key": "k5"})
    assert first.status_code == 500 and first.json()["code"] == "internal_error"
    async with database.reader() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
    again = await client.post("/companies", json=boom, headers={**AUTH, "Idempotency-Key": "k5"})
    assert again.status_code == 500 and "idempotent-replayed" not in again.headers


async def _plant_pending(
    database: Database, client: httpx.AsyncClient, clock: MovableClock
) -> None:
    """Make it look as if a request with key k6 is still running."""
    import hashlib

    def h(*parts: bytes) -> str:
        d = hashlib.sha256()
        for p in parts:
            d.update(len(p).to_bytes(8, "big"))
            d.update(p)
        return d.hexdigest()

    now = clock.now()
    async with database.writer() as session, session.begin():
        session.add(
            IdempotencyRecord(
                scope_hash=h(b"a", b"POST", b"/companies", b"k6"),
                request_hash=h(msgspec.json.encode(BODY)),
                created_at=now,
                locked_until=now + timedelta(seconds=60),
                expires_at=now + timedelta(hours=1),
            )
        )


async def test_a_request_in_progress_gets_409_until_its_lock_expires(
    client: httpx.AsyncClient, database: Database, clock: MovableClock
) -> None:
    await _plant_pending(database, client, clock)
    busy = await client.post(
        "/companies",
        content=msgspec.json.encode(BODY),
        headers={**AUTH, "Idempotency-Key": "k6", "content-type": "application/json"},
    )
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_in_progress"
    assert busy.headers["retry-after"] == "1"
    clock.advance(timedelta(seconds=61))
    retried = await client.post(
        "/companies",
        content=msgspec.json.encode(BODY),
        headers={**AUTH, "Idempotency-Key": "k6", "content-type": "application/json"},
    )
    assert retried.status_code == 201
    assert await _companies(database) == 1


async def test_the_same_request_sent_at_once_runs_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    """A phone's retries racing its first attempt: one claims the key and runs; the others
    find it claimed, either still running (409) or answered (the same answer replayed)."""
    headers = {**AUTH, "Idempotency-Key": "k-race"}
    answers = await asyncio.gather(
        *(client.post("/companies", json=BODY, headers=headers) for _ in range(6))
    )
    ran = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(ran) == 1
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["code"] == "idempotency_in_progress"
        else:
            assert answer.status_code == 201 and answer.json() == ran[0].json()
    assert await _companies(database) == 1


async def test_keys_expire(client: httpx.AsyncClient, clock: MovableClock) -> None:
    await client.post("/companies", json=BODY, headers={**AUTH, "Idempotency-Key": "k7"})
    clock.advance(timedelta(hours=2))
    fresh = await client.post(
        "/companies", json={**BODY, "name": "另一家"}, headers={**AUTH, "Idempotency-Key": "k7"}
    )
    # After expiry the key is free again: the request runs (and meets the existing code).
    assert fresh.status_code == 409 and fresh.json()["code"] == "company_exists"


@pytest.mark.parametrize("key", ["", "x" * 201])
async def test_bad_keys_are_refused(
    client: httpx.AsyncClient, key: str, database: Database
) -> None:
    response = await client.post("/companies", json=BODY, headers={**AUTH, "Idempotency-Key": key})
    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_invalid"
    assert await _companies(database) == 0


async def test_anonymous_requests_keep_no_record(
    client: httpx.AsyncClient, database: Database
) -> None:
    first = await client.post("/companies", json=BODY, headers={"Idempotency-Key": "anon"})
    second = await client.post("/companies", json=BODY, headers={"Idempotency-Key": "anon"})
    assert first.status_code == 201
    assert second.status_code == 409 and "idempotent-replayed" not in second.headers
    async with database.reader() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


async def test_without_a_key_requests_run_each_time(client: httpx.AsyncClient) -> None:
    first = await client.post("/companies", json=BODY)
    second = await client.post("/companies", json=BODY)
    assert first.status_code == 201 and second.status_code == 409


async def test_the_answer_is_stored_before_its_last_bytes_leave(
    database: Database, clock: MovableClock
) -> None:
    """A client that retries the moment it has the answer (another node, a double tap)
    must find it to replay: the record is complete before the last chunk is sent."""

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        start = {"type": "http.response.start", "status": 201}
        await send({**start, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"id":', "more_body": True})
        await send({"type": "http.response.body", "body": b"1}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    stored_when_sent: list[tuple[int | None, bytes | None]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            async with database.reader() as session:
                record = await session.scalar(select(IdempotencyRecord))
            assert record is not None
            stored_when_sent.append((record.status_code, record.response_body))

    middleware = IdempotencyMiddleware(
        handler, database=database, clock=clock, ttl=3600, lock_seconds=60, caller=lambda _: "a"
    )
    headers = [(b"idempotency-key", b"k9"), (b"content-type", b"application/json")]
    scope = {"type": "http", "method": "POST", "path": "/orders", "headers": headers}
    await middleware(scope, receive, send)  # type: ignore[arg-type]
    assert stored_when_sent == [(None, None), (201, b'{"id":1}')]
