"""The demo world and the ``wangqian`` command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import load_demo_world
from api.identity.models import StaffMember
from api.identity.staff import staff_project_ids
from api.register.models import Company, Permit, Unit
from api.register.queries import find_title
from api.settings import Settings
from tests.api.world import room, survey


async def test_demo_world_loads_once_and_shows_on_the_building_table(
    session: AsyncSession,
    clock: MovableClock,
    keys: ServiceKeys,
    settings: Settings,
    database: Database,
) -> None:
    first = await load_demo_world(session, keys, now=clock.now())
    await session.commit()
    second = await load_demo_world(session, keys, now=clock.now())
    await session.commit()
    assert first == second
    assert await session.scalar(select(func.count()).select_from(Company)) == 2
    assert await session.scalar(select(func.count()).select_from(Permit)) == 1
    assert await session.scalar(select(func.count()).select_from(Unit)) == 25
    roles = {p["role"] for p in first["people"]}
    assert {"sales_agent", "seal_keeper", "regulator", "buyer", "seller"} <= roles
    staff = {m.role.value: m for m in await session.scalars(select(StaffMember))}
    assert set(staff) == {"company_admin", "sales_agent", "seal_keeper", "regulator"}
    assert staff["regulator"].company_id is None
    assert staff["seal_keeper"].company_id == staff["company_admin"].company_id
    assert str(staff["sales_agent"].company_id) == first["company"]["id"]
    assert [str(p) for p in await staff_project_ids(session, staff["sales_agent"].id)] == [
        first["project"]["id"]
    ]
    title = first["resale_title"]
    assert await find_title(
        session, keys, certificate_no=title["certificate_no"], check_code=title["check_code"]
    )
    assert not await find_title(
        session, keys, certificate_no=title["certificate_no"], check_code="WRONG1"
    )

    app = create_app(settings, clock=clock, database=database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        table = (
            await client.get(f"/api/v1/public/buildings/{first['building']['id']}/units")
        ).json()
    assert len(table["units"]) == 24
    assert table["counts"] == {
        "available": 19,
        "signing": 0,
        "signed": 0,
        "filed": 0,
        "restricted": 1,
        "not_for_sale": 4,
    }
    statuses = {u["room_no"]: u["status"] for u in table["units"]}
    assert statuses["101"] == "not_for_sale" and statuses["502"] == "restricted"


def _run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_demo_command_twice_writes_the_same_world(tmp_path: Path) -> None:
    first = _run(["demo", "--no-serve"], tmp_path)
    assert first.returncode == 0, first.stderr
    world = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
    second = _run(["demo", "--no-serve"], tmp_path)
    assert second.returncode == 0, second.stderr
    again = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
    assert world == again  # the same world, and the same order waiting to be signed
    order = world["demo_order"]
    assert order["room_no"] == "603" and "/miniapp/#/scan/" in order["scan_url"]
    assert order["scan_url"] in first.stdout
    assert len(world["bank_webhook_secret"]) == 64
    assert world["building"]["id"] in first.stdout
    assert {p["phone"] for p in world["people"]} >= {"13800000001", "13900000001"}


def test_import_survey_command(tmp_path: Path) -> None:
    assert _run(["demo", "--no-serve"], tmp_path).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_bytes(survey("SY-DEMO-0001", [room("701", 7), room("701", 7, inner_area="-2")]))
    refused = _run(["import-survey", str(bad)], tmp_path)
    assert refused.returncode == 1
    assert "duplicate_room_no" in refused.stderr and "area_negative" in refused.stderr
    good = tmp_path / "good.json"
    good.write_bytes(survey("SY-DEMO-0001", [room("701", 7), room("702", 7)]))
    accepted = _run(["import-survey", str(good)], tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert "新增 2 户" in accepted.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_the_api_under_granian(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, "server did not come up"
        assert ready.json()["database"] == "sqlite"
        assert (tmp_path / "wangqian.db").exists()  # migrated on start
        projects = httpx.get(f"http://127.0.0.1:{port}/api/v1/public/projects", timeout=5)
        assert projects.status_code == 200 and projects.json()["total"] == 0
    finally:
        server.terminate()
        server.wait(timeout=15)
