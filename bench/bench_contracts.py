"""Contract flows against a real server (granian, loopback only, mocks enabled).

Starts ``wangqian demo`` (SQLite, mocks mounted, embedded outbox worker) on a free
127.0.0.1 port with a fresh data directory holding the demo world plus a 256-unit
building, and arranges (directly through the services, not timed) one face-verified
buyer and one seal keeper per flow with login sessions, so no login or SMS quota stands
in the way. Then, in one run on the same server:

- ``/healthz``: the bare Litestar JSON endpoint (baseline);
- whole flows: create -> issue -> scan -> signing code (read from the mock SMS inbox) ->
  sign -> seal code -> seal (contract number and password), ``--concurrency`` at a time;
- ``/api/v1/public/verify`` with a real contract number and password.

Prints requests/s (flows/s for flows), latencies and the ratios to the baseline.
Usage: ``python bench/bench_contracts.py [--seconds 5] [--flows 60] [--concurrency 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_public import _big_building, _drive, _free_port


async def _arrange(data_dir: Path, flows: int) -> dict[str, Any]:
    """Buyers (face verified) and seal keepers with sessions; the agent's session."""
    from api.core.clock import SystemClock
    from api.core.keys import ServiceKeys
    from api.db.engine import create_database
    from api.identity.models import PrincipalKind, StaffRole
    from api.identity.sessions import SessionPolicy, create_session
    from api.identity.staff import create_staff_member, staff_by_phone
    from api.register.models import Building, Unit
    from api.settings import Settings
    from signing.gb_codes import resident_id_check_char
    from tests.api.world import face_verified_citizen

    settings = Settings(data_dir=data_dir)
    keys = ServiceKeys.from_master(settings.master_secret())
    database = create_database(settings)
    now = SystemClock().now()
    policy = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
    out: dict[str, Any] = {"buyers": [], "keepers": []}
    async with database.writer() as session, session.begin():
        agent = await staff_by_phone(session, keys, "13800000001")
        assert agent is not None and agent.company_id is not None
        login = await create_session(
            session, policy, kind=PrincipalKind.staff, staff_id=agent.id, now=now
        )
        out["agent"] = login.token
        big = await session.scalar(select(Building).where(Building.survey_no == "SY-BENCH-8"))
        assert big is not None
        units = list(
            await session.scalars(
                select(Unit.id).where(Unit.building_id == big.id).order_by(Unit.room_no)
            )
        )
        for n in range(flows):
            id_number = "11010519900101" + f"{n:03d}"
            id_number += resident_id_check_char(id_number)
            phone = f"1360000{n:04d}"
            citizen = await face_verified_citizen(
                session, keys, phone=phone, name="测试买受人", id_number=id_number, now=now
            )
            login = await create_session(
                session, policy, kind=PrincipalKind.citizen, citizen_id=citizen.id, now=now
            )
            out["buyers"].append(
                {
                    "token": login.token,
                    "phone": phone,
                    "id_number": id_number,
                    "unit": str(units[n]),
                }
            )
            keeper = await create_staff_member(
                session,
                keys,
                name="测试印章",
                phone=f"1350000{n:04d}",
                role=StaffRole.seal_keeper,
                company_id=agent.company_id,
                now=now,
            )
            login = await create_session(
                session, policy, kind=PrincipalKind.staff, staff_id=keeper.id, now=now
            )
            out["keepers"].append({"token": login.token, "phone": f"1350000{n:04d}"})
    await database.dispose()
    return out


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _code(client: httpx.AsyncClient, phone: str) -> str:
    """The newest code sent to this phone (each purpose has a template of its own: sign_code,
    seal_code, ...; the inbox lists the newest first)."""
    inbox = (await client.get("/mock/sms/inbox", params={"phone": phone})).json()
    return next(m["params"]["code"] for m in inbox if "code" in (m.get("params") or {}))


async def _flow(client: httpx.AsyncClient, agent: str, buyer: dict, keeper: dict) -> dict:
    def ok(response: httpx.Response) -> dict:
        if response.status_code >= 300:
            raise SystemExit(
                f"{response.request.url} answered {response.status_code}: {response.text}"
            )
        return response.json()

    body = {
        "unit_id": buyer["unit"],
        "kind": "presale",
        "buyers": [
            {"name": "测试买受人", "id_number": buyer["id_number"], "phone": buyer["phone"]}
        ],
        "price_fen": 150_000_000,
        "payment_method": "lump_sum",
        "delivery_date": "2028-06-30",
    }
    order = ok(await client.post("/api/v1/contracts", json=body, headers=_auth(agent)))
    base = f"/api/v1/contracts/{order['id']}"
    issued = ok(await client.post(f"{base}/issue", headers=_auth(agent)))
    ok(
        await client.post(
            "/api/v1/scan", json={"scene": issued["scene"]}, headers=_auth(buyer["token"])
        )
    )
    challenge = ok(await client.post(f"{base}/signatures/challenge", headers=_auth(buyer["token"])))
    code = await _code(client, buyer["phone"])
    ok(
        await client.post(
            f"{base}/signatures",
            json={"challenge_id": challenge["challenge_id"], "code": code},
            headers=_auth(buyer["token"]),
        )
    )
    challenge = ok(await client.post(f"{base}/seal/challenge", headers=_auth(keeper["token"])))
    code = await _code(client, keeper["phone"])
    return ok(
        await client.post(
            f"{base}/seal",
            json={"challenge_id": challenge["challenge_id"], "code": code},
            headers=_auth(keeper["token"]),
        )
    )


async def _flows(base: str, people: dict, concurrency: int) -> tuple[float, list[float], dict]:
    queue = list(zip(people["buyers"], people["keepers"], strict=True))
    latencies: list[float] = []
    sealed: list[dict] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def worker() -> None:
            while queue:
                buyer, keeper = queue.pop()
                started = time.perf_counter()
                sealed.append(await _flow(client, people["agent"], buyer, keeper))
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, sealed[0]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--flows", type=int, default=60)
    args = parser.parse_args()
    if args.flows > 200:
        raise SystemExit("--flows is at most 200 (units with a permit in the bench building)")

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
        env["WANGQIAN_LOG_LEVEL"] = "WARNING"
        port = _free_port()
        demo = [sys.executable, "-m", "api.cli", "demo", "--port", str(port), "--data-dir", tmp]
        subprocess.run([*demo, "--no-serve"], cwd=ROOT, env=env, check=True, capture_output=True)
        asyncio.run(_big_building(data_dir))
        people = asyncio.run(_arrange(data_dir, args.flows))
        # BENCH_SERVER_LOG=path keeps the server's output (errors) for a look afterwards.
        log_path = os.environ.get("BENCH_SERVER_LOG")
        log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        server = subprocess.Popen(demo, cwd=ROOT, env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            print(
                f"granian 1 worker, SQLite, mocks on; {args.concurrency} concurrent clients; "
                f"{args.seconds:.0f} s per endpoint, {args.flows} whole flows"
            )
            asyncio.run(_drive(base + "/healthz", 0.5, 4))
            healthz, latencies = asyncio.run(
                _drive(base + "/healthz", args.seconds, args.concurrency)
            )
            rows = [("bare /healthz (JSON)", healthz, latencies, "req/s")]
            flows, latencies, sealed = asyncio.run(_flows(base, people, args.concurrency))
            rows.append(("whole flows (9 requests each)", flows, latencies, "flows/s"))
            query = f"number={sealed['contract_number']}&password={sealed['password']}"
            verify_url = f"{base}/api/v1/public/verify?{query}"
            asyncio.run(_drive(verify_url, 0.5, 4))
            # One contract number: past 5 checks in flight at once, verify takes them one
            # at a time (its guessing limit counts each before the password is checked), and
            # a client would meet 429s. Four clients stay under it.
            verify, latencies = asyncio.run(
                _drive(verify_url, args.seconds, min(args.concurrency, 4))
            )
            rows.insert(1, ("public verify", verify, latencies, "req/s"))
            for label, rate, lat, unit in rows:
                median = statistics.median(lat) * 1000
                p95 = statistics.quantiles(lat, n=20)[-1] * 1000
                print(
                    f"  {label:<30} {rate:8.1f} {unit:<8} median {median:7.1f} ms   "
                    f"p95 {p95:7.1f} ms   {rate / healthz:7.4f}× baseline"
                )
            print(
                f"  ratios: verify/healthz = {verify / healthz:.3f}; "
                f"flows/healthz = {flows / healthz:.5f}; "
                f"flow requests/healthz = {9 * flows / healthz:.3f}"
            )
            print(
                "  "
                + json.dumps(
                    {
                        "healthz_rps": round(healthz),
                        "verify_rps": round(verify),
                        "flows_per_s": round(flows, 2),
                    }
                )
            )
        finally:
            server.terminate()
            server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
