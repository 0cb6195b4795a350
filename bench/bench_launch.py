"""Launch day (开盘): 8 sales agents and 64 buyers at once on one building of 200 units for
sale, against ``wangqian serve --workers 2`` on PostgreSQL (loopback only).

A database of the bench's own is made on the PostgreSQL server named by ``--database-url``
(dropped afterwards), with the demo world, a 256-unit building (200 in a presale permit),
8 agents and 256 seal keepers of the developer and 64 face-verified buyers, each with a
login session. Then, for ``--seconds``:

- each agent picks units at random among those it has not seen taken and creates an order
  for the next buyer, then issues it; a unit another agent took first answers 409
  (``unit_taken``): that is the database's one-live-order-per-unit rule at work;
- each buyer scans what was issued for them and signs it with the SMS code (one code a
  minute per phone: later orders wait for their buyer).

Then the developer seals every contract signed, 8 seals at a time (each by a seal keeper
of its own: one SMS code a minute per phone), each drawing the next number of the city's
contract series.

The mock outside services (SMS inbox) run in a process of their own (one worker, so one
inbox). Prints orders created, conflicts, signatures, 5xx answers, p50/p99 of order
creation, of the issue and of the seal, seals per second, and the double sales found in
the database afterwards (units with two live orders or two contracts): the target is 0
double sales, 0 5xx, p99 of creation ≤ 250 ms.

Usage: ``python bench/bench_launch.py [--seconds 30]
[--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_http import _children, _profiled
from bench_public import _big_building, _free_port

AGENTS = 8
BUYERS = 64
# The developer's seal keepers, each sealing at most one contract after the rush (one SMS
# code a minute per phone), SEALING of them at a time.
SEAL_KEEPERS = 256
SEALING = 8
SECRET = "bench-launch-secret-" + "x" * 40  # a throwaway database's, never a deployment's


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


async def _arrange(url: str) -> dict[str, Any]:
    """Agents (assigned to the project) and buyers with sessions; the building's units."""
    from api.core.keys import ServiceKeys
    from api.db.engine import create_database
    from api.identity.models import (
        PrincipalKind,
        StaffRole,
    )
    from api.identity.sessions import SessionPolicy, create_session
    from api.identity.staff import create_staff_member, staff_by_phone
    from api.register.models import Building, Unit, permit_units
    from api.settings import Settings
    from signing.gb_codes import resident_id_check_char
    from tests.api.world import face_verified_citizen

    settings = Settings(database_url=url, secret_key=SECRET)
    keys = ServiceKeys.from_master(settings.master_secret())
    database = create_database(settings)
    now = datetime.now(UTC)
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
    out: dict[str, Any] = {"agents": [], "buyers": []}
    async with database.writer() as session, session.begin():
        demo_agent = await staff_by_phone(session, keys, "13800000001")
        assert demo_agent is not None and demo_agent.company_id is not None
        building = await session.scalar(select(Building).where(Building.survey_no == "SY-BENCH-8"))
        assert building is not None
        out["building"] = str(building.id)
        out["units"] = [
            str(u)
            for u in await session.scalars(
                select(Unit.id)
                .join(permit_units, permit_units.c.unit_id == Unit.id)
                .where(Unit.building_id == building.id)
            )
        ]
        for n in range(AGENTS):
            agent = await create_staff_member(
                session,
                keys,
                name=f"销售{n}",
                phone=f"1370000{n:04d}",
                role=StaffRole.sales_agent,
                company_id=demo_agent.company_id,
                now=now,
                project_ids=[building.project_id],
            )
            login = await create_session(
                session, policy, kind=PrincipalKind.staff, staff_id=agent.id, now=now
            )
            out["agents"].append(login.token)
        for n in range(BUYERS):
            id_number = "11010519900202" + f"{n:03d}"
            id_number += resident_id_check_char(id_number)
            phone = f"1360001{n:04d}"
            citizen = await face_verified_citizen(
                session, keys, phone=phone, name="开盘买受人", id_number=id_number, now=now
            )
            login = await create_session(
                session, policy, kind=PrincipalKind.citizen, citizen_id=citizen.id, now=now
            )
            out["buyers"].append({"token": login.token, "phone": phone, "id_number": id_number})
        out["keepers"] = []
        for n in range(SEAL_KEEPERS):
            phone = f"1350002{n:04d}"
            keeper = await create_staff_member(
                session,
                keys,
                name=f"印章{n}",
                phone=phone,
                role=StaffRole.seal_keeper,
                company_id=demo_agent.company_id,
                now=now,
            )
            login = await create_session(
                session, policy, kind=PrincipalKind.staff, staff_id=keeper.id, now=now
            )
            out["keepers"].append({"token": login.token, "phone": phone})
    await database.dispose()
    return out


async def _awaiting_seal(url: str) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id FROM contract_orders WHERE status = 'awaiting_seal'")
            )
            return [str(row[0]) for row in rows]
    finally:
        await engine.dispose()


async def _double_sales(url: str) -> tuple[int, int]:
    """Units with more than one live order, and units with more than one contract."""
    from api.contracts.models import CONTRACT_STATUSES, LIVE_STATUSES, ContractOrder

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            live = await conn.scalar(
                select(func.count()).select_from(
                    select(ContractOrder.unit_id)
                    .where(ContractOrder.status.in_(LIVE_STATUSES))
                    .group_by(ContractOrder.unit_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            contracts = await conn.scalar(
                select(func.count()).select_from(
                    select(ContractOrder.unit_id)
                    .where(ContractOrder.status.in_(CONTRACT_STATUSES))
                    .group_by(ContractOrder.unit_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
    finally:
        await engine.dispose()
    return int(live or 0), int(contracts or 0)


class Rush:
    def __init__(self, base: str, mocks: str, people: dict[str, Any], seconds: float) -> None:
        self.base, self.mocks, self.people = base, mocks, people
        self.deadline = time.monotonic() + seconds
        self.create_ms: list[float] = []
        self.issue_ms: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.codes: Counter[str] = Counter()
        self.taken: set[str] = set()
        self.signed = 0
        self.queues: list[asyncio.Queue[dict[str, Any]]] = [asyncio.Queue() for _ in range(BUYERS)]
        self.next_buyer = 0

    async def _call(self, client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Any:
        response = await client.request(method, url, **kw)
        self.statuses[response.status_code] += 1
        if response.status_code >= 400:
            body = response.json() if response.content else {}
            self.codes[body.get("code", str(response.status_code))] += 1
        return response

    async def agent(self, client: httpx.AsyncClient, token: str) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        units = list(self.people["units"])
        random.shuffle(units)
        for unit in units:
            if time.monotonic() > self.deadline:
                return
            if unit in self.taken:
                continue
            buyer_no = self.next_buyer % BUYERS
            self.next_buyer += 1
            buyer = self.people["buyers"][buyer_no]
            body = {
                "unit_id": unit,
                "kind": "presale",
                "buyers": [
                    {"name": "开盘买受人", "id_number": buyer["id_number"], "phone": buyer["phone"]}
                ],
                "price_fen": 150_000_000,
                "payment_method": "lump_sum",
                "delivery_date": "2028-06-30",
            }
            started = time.perf_counter()
            created = await self._call(
                client,
                "POST",
                "/api/v1/contracts",
                json=body,
                headers={**auth, "Idempotency-Key": secrets.token_hex(8)},
            )
            self.create_ms.append((time.perf_counter() - started) * 1000)
            self.taken.add(unit)
            if created.status_code != 201:
                continue
            order = created.json()["id"]
            started = time.perf_counter()
            issued = await self._call(
                client, "POST", f"/api/v1/contracts/{order}/issue", headers=auth
            )
            self.issue_ms.append((time.perf_counter() - started) * 1000)
            if issued.status_code == 200:
                await self.queues[buyer_no].put({"id": order, "scene": issued.json()["scene"]})

    async def buyer(self, client: httpx.AsyncClient, number: int) -> None:
        buyer = self.people["buyers"][number]
        auth = {"Authorization": f"Bearer {buyer['token']}"}
        while time.monotonic() < self.deadline:
            try:
                order = await asyncio.wait_for(self.queues[number].get(), timeout=1)
            except TimeoutError:
                continue
            scan = await self._call(
                client, "POST", "/api/v1/scan", json={"scene": order["scene"]}, headers=auth
            )
            if scan.status_code != 200:
                continue
            base = f"/api/v1/contracts/{order['id']}"
            challenge = await self._call(
                client, "POST", f"{base}/signatures/challenge", headers=auth
            )
            if challenge.status_code != 200:
                continue  # one code a minute per phone: the next order waits
            inbox = await client.get(
                f"{self.mocks}/mock/sms/inbox", params={"phone": buyer["phone"]}
            )
            code = next(
                m["params"]["code"] for m in inbox.json() if "code" in (m.get("params") or {})
            )
            signed = await self._call(
                client,
                "POST",
                f"{base}/signatures",
                json={"challenge_id": challenge.json()["challenge_id"], "code": code},
                headers=auth,
            )
            self.signed += signed.status_code == 200


class Sealing:
    """After the rush: the developer seals every contract its buyers signed, SEALING at
    once; each seal draws the next number of the city's contract series."""

    def __init__(self, base: str, mocks: str, people: dict[str, Any], orders: list[str]) -> None:
        self.base, self.mocks = base, mocks
        self.orders, self.keepers = list(orders), list(people["keepers"])
        self.seal_ms: list[float] = []
        self.sealed = 0
        self.statuses: Counter[int] = Counter()
        self.seconds = 0.0

    async def sealer(self, client: httpx.AsyncClient) -> None:
        while self.orders and self.keepers:
            order, keeper = self.orders.pop(), self.keepers.pop()
            auth = {"Authorization": f"Bearer {keeper['token']}"}
            base = f"/api/v1/contracts/{order}"
            challenge = await client.post(f"{base}/seal/challenge", headers=auth)
            self.statuses[challenge.status_code] += 1
            if challenge.status_code != 200:
                continue
            inbox = await client.get(
                f"{self.mocks}/mock/sms/inbox", params={"phone": keeper["phone"]}
            )
            code = next(
                m["params"]["code"] for m in inbox.json() if "code" in (m.get("params") or {})
            )
            started = time.perf_counter()
            sealed = await client.post(
                f"{base}/seal",
                json={"challenge_id": challenge.json()["challenge_id"], "code": code},
                headers=auth,
            )
            self.seal_ms.append((time.perf_counter() - started) * 1000)
            self.statuses[sealed.status_code] += 1
            self.sealed += sealed.status_code == 200

    async def run(self) -> Sealing:
        limits = httpx.Limits(max_connections=SEALING + 4)
        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=self.base, limits=limits, timeout=60) as client:
            await asyncio.gather(*(self.sealer(client) for _ in range(SEALING)))
        self.seconds = time.perf_counter() - started
        return self


async def _run(
    base: str, mocks: str, people: dict[str, Any], seconds: float, *, sign: bool = True
) -> Rush:
    rush = Rush(base, mocks, people, seconds)
    limits = httpx.Limits(max_connections=AGENTS + BUYERS + 8)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        await asyncio.gather(
            *(rush.agent(client, token) for token in people["agents"]),
            *(rush.buyer(client, n) for n in range(BUYERS if sign else 0)),
        )
    return rush


def _wait_ready(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", type=Path, help="a folder: py-spy profiles of each worker")
    parser.add_argument(
        "--no-sign", action="store_true", help="buyers stay away: order creation alone"
    )
    parser.add_argument(
        "--no-seal", action="store_true", help="the developer does not seal after the rush"
    )
    return parser.parse_args()


def _start(env: dict[str, str], log: Any, port: int, mock_port: int, workers: int) -> list[Any]:
    """The API (its workers run the outbox) and a second process that serves the mocks'
    inbox, so every worker's SMS lands in one place."""
    cli = [sys.executable, "-m", "api.cli"]
    serve = [*cli, "serve", "--port", str(port), "--workers", str(workers)]
    mocks = [*cli, "serve", "--port", str(mock_port)]
    return [
        subprocess.Popen(serve, cwd=ROOT, env=env, stdout=log, stderr=log),
        subprocess.Popen(
            mocks, cwd=ROOT, env={**env, "WANGQIAN_OUTBOX_WORKER": "off"}, stdout=log, stderr=log
        ),
    ]


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), statistics.quantiles(samples, n=100)[98]


def _report(
    args: argparse.Namespace, people: dict[str, Any], rush: Rush, sealing: Sealing | None, url: str
) -> int:
    """Prints the figures; the number of 5xx answers."""
    live, contracts = asyncio.run(_double_sales(url))
    p50, p99 = _p50_p99(rush.create_ms)
    issue_p50, issue_p99 = _p50_p99(rush.issue_ms)
    five = sum(n for status, n in rush.statuses.items() if status >= 500)
    if sealing is not None:
        five += sum(n for status, n in sealing.statuses.items() if status >= 500)
    print(
        f"launch day: {AGENTS} agents, {BUYERS} buyers, {len(people['units'])} units for "
        f"sale, {args.seconds:g} s, granian {args.workers} workers, PostgreSQL"
    )
    print(
        f"  orders created {rush.statuses[201]}, creation attempts {len(rush.create_ms)} "
        f"(p50 {p50:.0f} ms, p99 {p99:.0f} ms), signatures {rush.signed}"
    )
    print(f"  issues {len(rush.issue_ms)} (p50 {issue_p50:.0f} ms, p99 {issue_p99:.0f} ms)")
    print(f"  refusals by code: {dict(rush.codes)}")
    if sealing is not None and sealing.seal_ms:
        seal_p50, seal_p99 = _p50_p99(sealing.seal_ms)
        print(
            f"  then {len(sealing.seal_ms)} seals, {SEALING} at a time: {sealing.sealed} sealed in "
            f"{sealing.seconds:.1f} s ({sealing.sealed / sealing.seconds:.2f} seals/s; p50 "
            f"{seal_p50:.0f} ms, p99 {seal_p99:.0f} ms)"
        )
    print(
        f"  5xx answers: {five}; double sales: {live} units with two live orders, "
        f"{contracts} with two contracts"
    )
    return five


def main() -> int:
    args = _arguments()
    from api.settings import Settings

    base_url = make_url(args.database_url)
    name = f"bench_16_launch_{secrets.token_hex(3)}"
    url = base_url.set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(args.database_url, f'CREATE DATABASE "{name}"'))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            port, mock_port = _free_port(), _free_port()
            mocks = f"http://127.0.0.1:{mock_port}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
            env.update(
                WANGQIAN_DATABASE_URL=url,
                WANGQIAN_SECRET_KEY=SECRET,
                WANGQIAN_DATA_DIR=tmp,
                WANGQIAN_MOCKS_ENABLED="true",
                WANGQIAN_PUBLIC_BASE_URL=mocks,  # every process's SMS goes to one inbox
                WANGQIAN_DEPOSIT_BEFORE_SIGNING="false",
                WANGQIAN_LOG_LEVEL="WARNING",
            )
            demo = [sys.executable, "-m", "api.cli", "demo", "--no-serve"]
            subprocess.run(demo, cwd=ROOT, env=env, check=True, capture_output=True)
            asyncio.run(_big_building(Path(tmp), Settings(database_url=url, secret_key=SECRET)))
            people = asyncio.run(_arrange(url))
            log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115
            processes += _start(env, log, port, mock_port, args.workers)
            base = f"http://127.0.0.1:{port}"
            _wait_ready(f"{base}/readyz")
            _wait_ready(f"{mocks}/readyz")
            spies = []
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                for n, pid in enumerate(_children(processes[0].pid)):
                    spies.append(_profiled(pid, args.profile / f"worker{n}.txt", args.seconds))
            rush = asyncio.run(_run(base, mocks, people, args.seconds, sign=not args.no_sign))
            for spy in spies:
                spy.wait()
            sealing = None
            if not args.no_sign and not args.no_seal:
                signed = asyncio.run(_awaiting_seal(url))
                sealing = asyncio.run(Sealing(base, mocks, people, signed).run())
            if _report(args, people, rush, sealing, url):
                print((Path(tmp) / "server.log").read_text(errors="replace")[-4000:])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
