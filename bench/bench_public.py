"""Public building table under load, against a real server (granian, loopback only).

Starts ``wangqian serve`` on a free 127.0.0.1 port with a fresh data directory holding the
demo world plus one 32-floor building of 256 surveyed units (as a city launch would have),
then drives it with concurrent keep-alive clients for a fixed time per endpoint:

- ``/healthz`` is the baseline (framework + server, no database);
- the 24-unit demo building and the 256-unit building (``/api/v1/public/buildings/{id}/units``);
- ``/api/v1/public/projects``.

Prints requests/s and median/p95 latency per endpoint and each one's throughput as a ratio
of the baseline measured in the same run. Usage: ``python bench/bench_public.py [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _big_building(data_dir: Path, settings: Any = None) -> str:
    """Add a 32-floor building of 256 units to the demo project through the real services
    (200 of them in a presale permit); ``settings`` name another database (PostgreSQL)."""
    from api.core.clock import SystemClock, business_date
    from api.db.engine import create_database
    from api.register import service as register
    from api.register.models import PermitKind, Project, Unit
    from api.register.survey import import_survey
    from api.settings import Settings

    database = create_database(settings or Settings(data_dir=data_dir))
    now = SystemClock().now()
    today = business_date(now)
    rooms = [
        {
            "room_no": f"{floor}{room:02d}",
            "unit": str(1 + room // 5),
            "nominal_floor": floor,
            "actual_floor": floor,
            "building_area": "89.12",
            "inner_area": "72.30",
            "shared_area": "16.82",
            "use": "住宅",
        }
        for floor in range(1, 33)
        for room in range(1, 9)
    ]
    survey = {
        "format": "wangqian.survey/1",
        "survey_no": "SY-BENCH-8",
        "surveyed_on": "2026-03-01",
        "rooms": rooms,
    }
    async with database.writer() as session, session.begin():
        project = await session.scalar(select(Project).where(Project.name == "明湖花园"))
        assert project is not None
        building = await register.create_building(
            session,
            project_id=project.id,
            name="8栋",
            survey_no="SY-BENCH-8",
            floors_above=32,
            now=now,
        )
        await import_survey(session, json.dumps(survey).encode(), now=now)
        units = list(await session.scalars(select(Unit.id).where(Unit.building_id == building.id)))
        await register.grant_permit(
            session,
            project_id=project.id,
            kind=PermitKind.presale,
            number="BENCH-8",
            valid_from=today - timedelta(days=1),
            valid_until=today + timedelta(days=300),
            unit_ids=units[:200],
            now=now,
        )
    await database.dispose()
    return str(building.id)


async def _drive(url: str, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{url} answered {response.status_code}")

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
        env["WANGQIAN_LOG_LEVEL"] = "WARNING"
        subprocess.run(
            [sys.executable, "-m", "api.cli", "demo", "--no-serve", "--data-dir", tmp],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        world = json.loads((data_dir / "demo.json").read_text(encoding="utf-8"))
        big = asyncio.run(_big_building(data_dir))
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--data-dir", tmp],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            targets = [
                ("baseline /healthz", "/healthz"),
                (
                    "building table, 24 units",
                    f"/api/v1/public/buildings/{world['building']['id']}/units",
                ),
                ("building table, 256 units", f"/api/v1/public/buildings/{big}/units"),
                ("project list", "/api/v1/public/projects"),
            ]
            print(
                f"granian 1 worker, SQLite, {args.concurrency} concurrent clients, "
                f"{args.seconds:.0f} s per endpoint"
            )
            baseline = None
            for label, path in targets:
                asyncio.run(_drive(base + path, 0.5, 4))  # warm up
                rps, latencies = asyncio.run(_drive(base + path, args.seconds, args.concurrency))
                baseline = baseline or rps
                median = statistics.median(latencies) * 1000
                p95 = statistics.quantiles(latencies, n=20)[-1] * 1000
                print(
                    f"  {label:<28} {rps:8.0f} req/s   median {median:6.1f} ms   "
                    f"p95 {p95:6.1f} ms   {rps / baseline:5.2f}× baseline"
                )
        finally:
            server.terminate()
            server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
