"""The service is stateless behind a load balancer: two API processes on two ports and one
``wangqian worker``, on one PostgreSQL database and one Redis, with a whole new-home flow
whose requests alternate between the nodes. Rate limits, idempotency keys, the public read
cache and messages hold across them: a replay on the other node answers the first node's
answer, a building table cached on one node shows the other node's signature at once, a
limit is not doubled by two nodes, and each message is sent once, by the worker.

PostgreSQL only (several processes share one database); it runs in the PostgreSQL pass."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from api.core.keys import ServiceKeys
from api.db.engine import create_database
from api.identity.models import PrincipalKind
from api.identity.sessions import SessionPolicy, create_session
from api.identity.staff import staff_by_phone
from api.outbox.models import DeliveryAttempt, MessageStatus, OutboxMessage
from api.settings import Settings
from signing.gb_codes import resident_id_check_char
from tests.api.world import face_verified_citizen
from tests.conftest import PG_URL, TEST_SECRET, _admin

ROOT = Path(__file__).resolve().parents[2]
# A Redis database of this test's own, emptied before and after (limits and versions).
REDIS_URL = "redis://127.0.0.1:6379/13"
BUYER_PHONE = "13600000077"
# Everything this test waits for has a deadline: servers starting, the worker sending.
START_SECONDS = 60
SEND_SECONDS = 30

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="several nodes share one PostgreSQL database: the PostgreSQL pass runs it"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flush_redis() -> None:
    from redis import Redis

    with Redis.from_url(REDIS_URL) as redis:
        redis.flushdb()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    base = make_url(PG_URL)
    name = f"{base.database}_nodes_{secrets.token_hex(3)}"
    _admin(PG_URL, f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    _flush_redis()
    ports = [_free_port(), _free_port()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
    env.update(
        WANGQIAN_DATABASE_URL=url,
        WANGQIAN_REDIS_URL=REDIS_URL,
        WANGQIAN_SECRET_KEY=TEST_SECRET,
        WANGQIAN_DATA_DIR=str(tmp_path),
        WANGQIAN_MOCKS_ENABLED="true",
        # The mock SMS gateway of node 1 is every process's SMS provider (one inbox).
        WANGQIAN_PUBLIC_BASE_URL=f"http://127.0.0.1:{ports[0]}",
        WANGQIAN_OUTBOX_WORKER="off",
        WANGQIAN_OUTBOX_POLL_SECONDS="0.2",
        WANGQIAN_DEPOSIT_BEFORE_SIGNING="false",
        WANGQIAN_LOG_LEVEL="WARNING",
    )
    cli = [sys.executable, "-m", "api.cli"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        demo = subprocess.run(
            [*cli, "demo", "--no-serve"], cwd=ROOT, env=env, capture_output=True, timeout=120
        )
        assert demo.returncode == 0, demo.stderr.decode()
        people = asyncio.run(_arrange(url))
        log = tmp_path / "processes.log"
        with log.open("wb") as out:
            for port in ports:
                processes.append(
                    subprocess.Popen(
                        [*cli, "serve", "--port", str(port)],
                        cwd=ROOT,
                        env=env,
                        stdout=out,
                        stderr=out,
                    )
                )
            processes.append(
                subprocess.Popen([*cli, "worker"], cwd=ROOT, env=env, stdout=out, stderr=out)
            )
        nodes = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + START_SECONDS
        for node in nodes:
            while True:
                try:
                    if httpx.get(f"{node}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.2)
        world = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
        yield {"nodes": nodes, "url": url, "people": people, "log": log, "world": world}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        _admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _flush_redis()


async def _arrange(url: str) -> dict[str, str]:
    """Login sessions of the demo's agent and seal keeper, and a face-verified buyer."""
    settings = Settings(database_url=url, secret_key=TEST_SECRET)
    keys = ServiceKeys.from_master(settings.master_secret())
    database = create_database(settings)
    now = datetime.now(UTC)
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
    people: dict[str, str] = {}
    try:
        async with database.writer() as session, session.begin():
            for role, phone in (("agent", "13800000001"), ("keeper", "13800000002")):
                staff = await staff_by_phone(session, keys, phone)
                assert staff is not None, phone
                login = await create_session(
                    session, policy, kind=PrincipalKind.staff, staff_id=staff.id, now=now
                )
                people[role] = login.token
                people[f"{role}_phone"] = phone
            id_number = "11010519900101777"
            id_number += resident_id_check_char(id_number)
            buyer = await face_verified_citizen(
                session, keys, phone=BUYER_PHONE, name="节点买受人", id_number=id_number, now=now
            )
            login = await create_session(
                session, policy, kind=PrincipalKind.citizen, citizen_id=buyer.id, now=now
            )
            people["buyer"] = login.token
            people["buyer_id_number"] = id_number
    finally:
        await database.dispose()
    return people


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.request.url, response.text)
    return response.json()


def _code(client: httpx.Client, inbox_node: str, phone: str) -> str:
    inbox = _ok(client.get(f"{inbox_node}/mock/sms/inbox", params={"phone": phone}))
    return next(m["params"]["code"] for m in inbox if "code" in (m.get("params") or {}))


def test_two_nodes_and_a_worker_behave_as_one_service(cluster: dict[str, Any]) -> None:
    a, b = cluster["nodes"]
    people = cluster["people"]

    def auth(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {people[who]}"}

    with httpx.Client(timeout=30) as client:
        building = cluster["world"]["building"]["id"]
        table_url = f"/api/v1/public/buildings/{building}/units"
        units = _ok(client.get(f"{b}{table_url}"))["units"]
        unit = next(u for u in units if u["status"] == "available")

        def status_on(node: str) -> str:
            table = _ok(client.get(f"{node}{table_url}"))
            return next(u["status"] for u in table["units"] if u["id"] == unit["id"])

        assert status_on(a) == status_on(b) == "available"  # both nodes hold it now

        # An order created on node A with an Idempotency-Key; the retry lands on node B.
        body = {
            "unit_id": unit["id"],
            "kind": "presale",
            "buyers": [
                {"name": "节点买受人", "id_number": people["buyer_id_number"], "phone": BUYER_PHONE}
            ],
            "price_fen": 150_000_000,
            "payment_method": "lump_sum",
            "delivery_date": "2028-06-30",
        }
        key = {"Idempotency-Key": secrets.token_hex(8)}
        created = client.post(f"{a}/api/v1/contracts", json=body, headers={**auth("agent"), **key})
        order = _ok(created, 201)
        # The first answer was stored before it was sent: a retry on the other node at
        # once replays it.
        replayed = client.post(f"{b}/api/v1/contracts", json=body, headers={**auth("agent"), **key})
        assert replayed.status_code == 201 and replayed.content == created.content
        assert status_on(b) == "signing"  # B's cached table learnt of A's write

        contract = f"/api/v1/contracts/{order['id']}"
        issued = _ok(client.post(f"{b}{contract}/issue", headers=auth("agent")))
        _ok(client.post(f"{a}/api/v1/scan", json={"scene": issued["scene"]}, headers=auth("buyer")))
        challenge = _ok(client.post(f"{b}{contract}/signatures/challenge", headers=auth("buyer")))
        signed = client.post(
            f"{a}{contract}/signatures",
            json={"challenge_id": challenge["challenge_id"], "code": _code(client, a, BUYER_PHONE)},
            headers=auth("buyer"),
        )
        _ok(signed)
        challenge = _ok(client.post(f"{b}{contract}/seal/challenge", headers=auth("keeper")))
        sealed = _ok(
            client.post(
                f"{a}{contract}/seal",
                json={
                    "challenge_id": challenge["challenge_id"],
                    "code": _code(client, a, people["keeper_phone"]),
                },
                headers=auth("keeper"),
            )
        )
        assert status_on(b) == status_on(a) == "signed"

        # Verify: a genuine answer on both; then wrong passwords spread over both nodes
        # reach the per-number count (5 an hour checked at once) once, not once per node:
        # the 6th is checked after claiming the number's pause, the 7th meets that pause.
        verify = "/api/v1/public/verify"
        right = {"number": sealed["contract_number"], "password": sealed["password"]}
        for node in (a, b):
            assert _ok(client.get(f"{node}{verify}", params=right))["genuine"] is True
        wrong = {**right, "password": "00000000"}
        answers = [client.get(f"{(a, b)[n % 2]}{verify}", params=wrong) for n in range(7)]
        assert [answer.status_code for answer in answers] == [200] * 6 + [429]
        assert all(answer.json()["genuine"] is False for answer in answers[:6])
        paused = answers[-1]
        assert paused.json()["code"] == "rate_limited" and paused.json()["limit"] == "verify-number"
        # The rightful holder is never locked out: after the pause the server names (a second
        # or two; these are real processes, so their clock is the wall clock), the right
        # password answers genuine, on the other node.
        time.sleep(float(paused.headers["Retry-After"]))
        held = client.get(f"{b}{verify}", params=right)
        if held.status_code == 429:  # the right one's own turn may wait one pause more
            time.sleep(float(held.headers["Retry-After"]))
            held = client.get(f"{b}{verify}", params=right)
        assert _ok(held)["genuine"] is True

    asyncio.run(_sent_once(cluster["url"], order["id"]))


async def _sent_once(url: str, order_id: str) -> None:
    """The contract's messages are sent by the worker (the nodes run none), each once."""
    database = create_database(Settings(database_url=url, secret_key=TEST_SECRET))
    deadline = time.monotonic() + SEND_SECONDS
    try:
        while True:
            async with database.reader() as session:
                messages = list(
                    await session.scalars(
                        select(OutboxMessage).where(
                            OutboxMessage.contract_id == uuid.UUID(order_id)
                        )
                    )
                )
            signed = [m for m in messages if m.template == "contract_signed"]
            if signed and all(m.status == MessageStatus.sent for m in messages):
                break
            assert time.monotonic() < deadline, [(m.template, m.status) for m in messages]
            await asyncio.sleep(0.3)
        async with database.reader() as session:
            attempts = (
                await session.execute(
                    select(
                        DeliveryAttempt.message_id, func.count(), func.min(DeliveryAttempt.worker)
                    )
                    .where(DeliveryAttempt.message_id.in_([m.id for m in messages]))
                    .where(DeliveryAttempt.outcome == "sent")
                    .group_by(DeliveryAttempt.message_id)
                )
            ).all()
        assert len(attempts) == len(messages)
        assert all(count == 1 for _, count, _ in attempts)
        assert len({worker for _, _, worker in attempts}) == 1  # the one worker process
    finally:
        await database.dispose()
