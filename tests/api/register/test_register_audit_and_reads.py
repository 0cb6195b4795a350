"""The register's audit trail (who, what, when, before and after, documents) and what a
regulator reads before acting: projects, a project's permits, a building's units."""

from __future__ import annotations

from datetime import timedelta

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.tables import metadata
from tests.api.identity.helpers import me
from tests.api.identity.test_identity_migration import _tables
from tests.api.register.helpers import problem, register_units, register_world

MISSING = "00000000-0000-4000-8000-000000000000"
REGISTER_TABLES = {
    "permits",
    "permit_changes",
    "permit_change_units",
    "unit_restrictions",
    "register_audit",
    "register_audit_units",
}


async def test_register_tables_match_the_models(database: Database) -> None:
    async with database.engine.connect() as connection:
        diffs = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), metadata
            )
        )
    assert [d for d in diffs if _tables(d) & REGISTER_TABLES] == []


async def test_every_register_action_is_in_the_audit_trail(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    regulator = await me(client, r.regulator["Authorization"].removeprefix("Bearer "))
    unit = r.units["402"]

    clock.advance(timedelta(minutes=1))
    seized = await client.post(
        f"/api/v1/register/units/{unit}/restrictions",
        json={"kind": "judicial_seizure", "authority": "示范市中院", "document_no": "(2026)执1号"},
        headers=r.regulator,
    )
    clock.advance(timedelta(minutes=1))
    await client.post(
        f"/api/v1/register/restrictions/{seized.json()['id']}/lift",
        json={"authority": "示范市中院", "document_no": "(2026)执1号之一"},
        headers=r.regulator,
    )
    clock.advance(timedelta(minutes=1))
    started = await client.post(
        f"/api/v1/register/permits/{r.permit_id}/changes",
        json={"document_no": "变(2026)3号", "valid_until": "2030-12-31"},
        headers=r.regulator,
    )
    clock.advance(timedelta(minutes=1))
    await client.post(
        f"/api/v1/register/permit-changes/{started.json()['id']}/approve",
        json={},
        headers=r.regulator,
    )

    trail = await client.get(
        "/api/v1/register/audit", params={"unit_id": unit}, headers=r.regulator
    )
    assert trail.status_code == 200, trail.text
    items = trail.json()["items"]
    # Newest first; the demo world's own grant and the four actions above.
    assert [e["action"] for e in items] == [
        "permit_change_approved",
        "permit_change_started",
        "restriction_lifted",
        "restriction_added",
        "permit_granted",
    ]
    assert trail.json()["total"] == 5
    approved, started_entry, lifted, added, granted = items
    for entry in (approved, started_entry, lifted, added):
        assert entry["actor_staff_id"] == regulator["id"]
        assert entry["actor_name_masked"] == "周**"
        assert entry["project_id"] == r.project_id
    assert granted["actor_staff_id"] is None and granted["actor_name_masked"] == "平台"
    assert added["document_no"] == "(2026)执1号" and added["before"] is None
    assert added["after"]["kind"] == "judicial_seizure" and added["after"]["lifted"] is False
    assert lifted["document_no"] == "(2026)执1号之一"
    assert lifted["before"]["lifted"] is False and lifted["after"]["lifted"] is True
    assert lifted["after"]["lift_authority"] == "示范市中院"
    assert started_entry["subject_id"] == started.json()["id"]
    assert approved["before"]["valid_until"] != "2030-12-31"
    assert approved["after"]["valid_until"] == "2030-12-31"
    assert unit in approved["after"]["unit_ids"]

    # Another unit's trail does not show this seizure; the project's shows everything.
    other = await client.get(
        "/api/v1/register/audit", params={"unit_id": r.units["403"]}, headers=r.regulator
    )
    assert "restriction_added" not in [e["action"] for e in other.json()["items"]]
    project = await client.get(
        "/api/v1/register/audit",
        params={"project_id": r.project_id, "limit": 2, "offset": 0},
        headers=r.regulator,
    )
    assert project.json()["total"] >= 7 and len(project.json()["items"]) == 2

    for params, expected in (
        ({"unit_id": MISSING}, (404, "not_found")),
        ({"unit_id": "402"}, (404, "not_found")),
        ({"project_id": MISSING}, (404, "not_found")),
        ({"limit": 0}, (422, "invalid_parameter")),
    ):
        answer = await client.get("/api/v1/register/audit", params=params, headers=r.regulator)
        assert problem(answer) == expected, params
    refused = await client.get("/api/v1/register/audit", headers=r.agent)
    assert problem(refused) == (403, "role_forbidden")


async def test_a_regulator_reads_projects_permits_and_units(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    listed = await client.get("/api/v1/register/projects", headers=r.regulator)
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 2  # the demo project and the resale estate
    demo = next(p for p in listed.json()["items"] if p["id"] == r.project_id)
    assert demo["buildings"] == [{"id": r.building_id, "name": "1栋", "units": 24}]
    assert demo["permits"] == [
        {
            "id": r.permit_id,
            "number": r.world["permit"]["number"],
            "kind": "presale",
            "status": "in_force",
            "valid_from": demo["permits"][0]["valid_from"],
            "valid_until": demo["permits"][0]["valid_until"],
            "units": 20,
            "open_change_id": None,
        }
    ]
    found = await client.get("/api/v1/register/projects", params={"q": "明湖"}, headers=r.regulator)
    assert [p["id"] for p in found.json()["items"]] == [r.project_id]

    detail = await client.get(f"/api/v1/register/projects/{r.project_id}", headers=r.regulator)
    assert detail.status_code == 200, detail.text
    assert detail.json()["project"]["name"] == "明湖花园"
    assert len(detail.json()["permits"][0]["unit_ids"]) == 20

    units = await register_units(client, r)
    assert units["101"]["property_management"] is True and units["101"]["saleable_as"] == []
    assert units["502"]["restricted"] is True
    assert units["502"]["restrictions"][0]["kind"] == "judicial_seizure"
    assert units["201"]["saleable_as"] == ["presale"] and units["201"]["permits"][0]["id"] == (
        r.permit_id
    )
    assert units["102"]["permits"] == [] and units["201"]["building_area"] == "118.36"

    for path in (
        f"/api/v1/register/projects/{MISSING}",
        f"/api/v1/register/buildings/{MISSING}/units",
        f"/api/v1/register/permits/{MISSING}",
        "/api/v1/register/projects/nope",
    ):
        assert problem(await client.get(path, headers=r.regulator)) == (404, "not_found"), path
    for path in ("/api/v1/register/projects", f"/api/v1/register/buildings/{r.building_id}/units"):
        assert problem(await client.get(path, headers=r.admin)) == (403, "role_forbidden")
