"""Arranging escrow scenarios: the demo world, an approved supervised account, a completed
contract's notices (through the service call contracts make), signed bank webhooks."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.demo import load_demo_world
from api.escrow import signature
from api.escrow.notices import NoticePayee, create_payment_notices
from api.outside import mock_bank_webhook_secret
from api.settings import Settings
from tests.api.identity.helpers import bearer, login_phone

ADMIN = "13800000004"
REGULATOR = "13800000003"
AGENT = "13800000001"
BUYER = "13900000001"
ACCOUNT_NUMBER = "6222020200112233445"
MILESTONES = [
    {"code": "foundation", "name": "基础完成", "key_percent": 100},
    {"code": "topped_out", "name": "主体封顶", "key_percent": 40},
    {"code": "completed", "name": "竣工验收", "key_percent": 0},
]
# The regulator's key amount per m² (fen) and what it makes of the demo project's 24
# units, 2489.76 m² in all: 200 × 2489.76 = 497 952 fen to stay until the foundation,
# 40 % of it (199 180.8, rounded up) until the topping out.
KEY_RATE = 200
FOUNDATION_KEY = 497_952
TOPPED_OUT_KEY = 199_181


@dataclass
class Escrow:
    world: dict[str, Any]
    admin: dict[str, str]
    regulator: dict[str, str]
    account_id: str
    contract_id: uuid.UUID
    notices: dict[str, dict[str, Any]]  # kind -> notice answer
    secret: str


async def demo_world(
    session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> dict[str, Any]:
    # Without the demo's own supervised account: these tests open and approve one.
    world = await load_demo_world(session, keys, now=clock.now(), supervised_account=False)
    await session.commit()
    return world


async def approved_account(
    client: httpx.AsyncClient,
    world: dict[str, Any],
    admin: dict[str, str],
    regulator: dict[str, str],
) -> str:
    created = await client.post(
        "/api/v1/escrow/accounts",
        headers=admin,
        json={
            "project_id": world["project"]["id"],
            "bank_name": "示范银行明湖支行",
            "account_name": "示范市明湖置业有限公司预售资金监管专户",
            "account_number": ACCOUNT_NUMBER,
            "milestones": MILESTONES,
        },
    )
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    approved = await client.post(
        f"/api/v1/escrow/accounts/{account_id}/approve",
        headers=regulator,
        json={"key_rate_fen_per_m2": KEY_RATE},
    )
    assert approved.status_code == 200, approved.text
    return account_id


async def contract_notices(
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    world: dict[str, Any],
    *,
    deposit_fen: int = 2_000_000,
    down_payment_fen: int = 30_000_000,
    citizen_id: uuid.UUID | None = None,
    contract_number: str | None = None,
) -> uuid.UUID:
    """A completed contract as the contracts context hands it over; ``citizen_id`` is the
    account that signed as its buyer."""
    contract_id = uuid.uuid4()
    await create_payment_notices(
        session,
        keys,
        contract_id=contract_id,
        contract_number=contract_number or "YS2026" + contract_id.hex[:6].upper(),
        project_id=uuid.UUID(world["project"]["id"]),
        company_id=uuid.UUID(world["company"]["id"]),
        buyers=[NoticePayee(phone=BUYER, name="张三", citizen_id=citizen_id)],
        deposit_fen=deposit_fen,
        down_payment_fen=down_payment_fen,
        estate="明湖花园",
        building="1栋",
        room="301",
        now=clock.now(),
    )
    await session.commit()
    return contract_id


async def setup(
    client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    settings: Settings,
    contract_number: str | None = None,
    **amounts: int,
) -> Escrow:
    world = await demo_world(session, keys, clock)
    admin = bearer(await login_phone(client, ADMIN))
    regulator = bearer(await login_phone(client, REGULATOR))
    account_id = await approved_account(client, world, admin, regulator)
    contract_id = await contract_notices(
        session, keys, clock, world, contract_number=contract_number, **amounts
    )
    listed = await client.get(f"/api/v1/contracts/{contract_id}/payment-notices", headers=admin)
    assert listed.status_code == 200, listed.text
    notices = {n["kind"]: n for n in listed.json()["items"]}
    return Escrow(
        world,
        admin,
        regulator,
        account_id,
        contract_id,
        notices,
        mock_bank_webhook_secret(settings),
    )


def event(
    kind: str = "payment.received",
    *,
    txn: str | None = None,
    amount_fen: int = 100,
    reference: str = "",
    instruction_id: str = "",
    account_number: str = ACCOUNT_NUMBER,
) -> bytes:
    body = {
        "id": "evt_" + uuid.uuid4().hex[:12],
        "type": kind,
        "created": 0,
        "data": {
            "transaction_id": txn or "BK" + uuid.uuid4().hex[:16].upper(),
            "account_number": account_number,
            "amount_fen": amount_fen,
            "reference": reference,
            "instruction_id": instruction_id,
        },
    }
    return json.dumps(body).encode()


async def post_event(
    client: httpx.AsyncClient,
    body: bytes,
    secret: str,
    clock: MovableClock,
    *,
    timestamp: int | None = None,
    header: str | None = None,
    idempotency_key: str | None = None,
) -> httpx.Response:
    t = int(clock.now().timestamp()) if timestamp is None else timestamp
    sig = header if header is not None else signature.sign_header(secret, t, body)
    headers = {"content-type": "application/json"}
    if sig:
        headers[signature.HEADER] = sig
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return await client.post("/api/v1/webhooks/bank", content=body, headers=headers)


async def pay(
    client: httpx.AsyncClient,
    escrow: Escrow,
    clock: MovableClock,
    kind: str,
    amount_fen: int,
    *,
    txn: str | None = None,
    idempotency_key: str | None = None,
) -> httpx.Response:
    body = event(amount_fen=amount_fen, reference=escrow.notices[kind]["reference"], txn=txn)
    return await post_event(client, body, escrow.secret, clock, idempotency_key=idempotency_key)


async def notices(client: httpx.AsyncClient, escrow: Escrow) -> dict[str, dict[str, Any]]:
    response = await client.get(
        f"/api/v1/contracts/{escrow.contract_id}/payment-notices", headers=escrow.admin
    )
    assert response.status_code == 200, response.text
    return {n["kind"]: n for n in response.json()["items"]}


async def statement(client: httpx.AsyncClient, escrow: Escrow) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/escrow/accounts/{escrow.account_id}/statement", headers=escrow.admin
    )
    assert response.status_code == 200, response.text
    return response.json()
