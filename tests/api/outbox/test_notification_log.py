"""The delivery log over HTTP, and the worker delivering through the app's own clients."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import PEOPLE, load_demo_world
from api.outbox import service
from api.outbox.models import MessageStatus, OutboxMessage
from tests.api.identity.helpers import bearer, inbox, login_phone

SIGNED = {
    "estate": "明湖花园",
    "building": "1栋",
    "room": "301",
    "buyer_name": "张三",
    "contract_number": "YS2026000123",
    "password": "12345678",
}


def _phone(role: str) -> str:
    return next(p.phone for p in PEOPLE if p.role == role)


async def _world(session: AsyncSession, keys: ServiceKeys, clock: MovableClock) -> dict[str, Any]:
    world = await load_demo_world(session, keys, now=clock.now())
    await session.commit()
    return world


async def _enqueue(
    database: Database, keys: ServiceKeys, clock: MovableClock, key: str, company: uuid.UUID | None
) -> uuid.UUID:
    async with database.writer() as session, session.begin():
        message_id = await service.enqueue(
            session,
            keys,
            template="contract_signed",
            params=SIGNED,
            dedupe_key=key,
            phone="13900000001",
            now=clock.now(),
            company_id=company,
        )
    assert message_id is not None
    return message_id


async def test_staff_see_their_company_log_masked_and_regulators_see_all(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    world = await _world(session, keys, clock)
    company = uuid.UUID(world["company"]["id"])
    await _enqueue(database, keys, clock, "ours", company)
    await _enqueue(database, keys, clock, "platform", None)

    admin = await login_phone(mock_client, _phone("company_admin"))
    page = (await mock_client.get("/api/v1/notifications/", headers=bearer(admin))).json()
    assert page["total"] == 1
    entry = page["items"][0]
    assert entry["title"] == "买卖合同签订" and entry["status"] == "pending"
    assert entry["recipient"] == "139****0001"
    assert "12345678" not in str(page)

    clock.advance(timedelta(minutes=1))
    regulator = await login_phone(mock_client, _phone("regulator"))
    everything = (await mock_client.get("/api/v1/notifications/", headers=bearer(regulator))).json()
    assert everything["total"] == 2


async def test_citizens_and_strangers_cannot_read_the_log(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    await _world(session, keys, clock)
    anonymous = await mock_client.get("/api/v1/notifications/")
    assert anonymous.status_code == 401
    citizen = await login_phone(mock_client, _phone("buyer"))
    refused = await mock_client.get("/api/v1/notifications/", headers=bearer(citizen))
    assert refused.status_code == 403 and refused.json()["code"] == "staff_only"


async def test_the_app_worker_delivers_and_a_dead_message_can_be_retried_by_an_admin(
    mock_client: httpx.AsyncClient,
    mock_app: Litestar,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    world = await _world(session, keys, clock)
    company = uuid.UUID(world["company"]["id"])
    message_id = await _enqueue(database, keys, clock, "to-die", company)
    worker = mock_app.state.outbox
    # The provider refuses the number for good: the message dies at once.
    await mock_client.post("/mock/sms/faults", json={"next_code": "isv.MOBILE_NUMBER_ILLEGAL"})
    assert await worker.run_once() == 0
    async with database.reader() as reader:
        message = await reader.get(OutboxMessage, message_id)
        assert message is not None and message.status == MessageStatus.dead

    agent = await login_phone(mock_client, _phone("sales_agent"))
    forbidden = await mock_client.post(
        f"/api/v1/notifications/{message_id}/retry", headers=bearer(agent)
    )
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "role_forbidden"

    clock.advance(timedelta(minutes=1))
    admin = await login_phone(mock_client, _phone("company_admin"))
    retried = await mock_client.post(
        f"/api/v1/notifications/{message_id}/retry", headers=bearer(admin)
    )
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    again = await mock_client.post(
        f"/api/v1/notifications/{message_id}/retry", headers=bearer(admin)
    )
    assert again.status_code == 409 and again.json()["code"] == "message_not_dead"
    missing = await mock_client.post(
        f"/api/v1/notifications/{uuid.uuid4()}/retry", headers=bearer(admin)
    )
    assert missing.status_code == 404

    assert await worker.run_once() == 1
    texts = [m["text"] for m in await inbox(mock_client, "13900000001")]
    assert any("合同编号为：YS2026000123" in t for t in texts)
