"""The public building table over HTTP: statuses follow permits and restrictions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.register import service as register
from api.register.models import PermitKind, RestrictionKind
from tests.api.world import World, grant_presale, make_world

Client = httpx.AsyncClient


async def _table(client: Client, world: World) -> dict[str, Any]:
    response = await client.get(f"/api/v1/public/buildings/{world.building_id}/units")
    assert response.status_code == 200, response.text
    return response.json()


def _statuses(table: dict[str, Any]) -> dict[str, str]:
    return {u["room_no"]: u["status"] for u in table["units"]}


async def test_units_without_a_permit_are_not_for_sale(
    client: Client, session: AsyncSession, clock: MovableClock
) -> None:
    world = await make_world(session, clock.now())
    await session.commit()
    table = await _table(client, world)
    assert set(_statuses(table).values()) == {"not_for_sale"}
    assert table["counts"] == {
        "available": 0,
        "signing": 0,
        "signed": 0,
        "filed": 0,
        "restricted": 0,
        "not_for_sale": 6,
    }
    assert table["units"][0]["status_label"] == "不可售"
    assert table["units"][0]["building_area"] == "89.12"
    assert {e["label"] for e in table["legend"]} == {
        "可售",
        "签约中",
        "已签约",
        "已备案",
        "查封限制",
        "不可售",
    }


async def test_permit_restrictions_and_lifting_change_the_public_status(
    client: Client, session: AsyncSession, clock: MovableClock
) -> None:
    world = await make_world(session, clock.now())
    now = clock.now()
    await grant_presale(session, world, now, ["201", "202", "301", "302"])
    seizure = await register.add_restriction(
        session,
        unit_id=world.units["202"],
        kind=RestrictionKind.judicial_seizure,
        source="测试区人民法院",
        document_no="(2026)测执保1号",
        starts_on=world.today,
        now=now,
    )
    await register.add_restriction(
        session,
        unit_id=world.units["301"],
        kind=RestrictionKind.property_management,
        source="测试区住建局",
        starts_on=world.today,
        now=now,
    )
    await register.add_restriction(
        session,
        unit_id=world.units["302"],
        kind=RestrictionKind.mortgage,
        source="测试银行",
        starts_on=world.today,
        now=now,
    )
    # A restriction that starts next month does not count yet.
    await register.add_restriction(
        session,
        unit_id=world.units["201"],
        kind=RestrictionKind.administrative,
        source="测试区住建局",
        starts_on=world.today + timedelta(days=30),
        now=now,
    )
    await session.commit()

    table = await _table(client, world)
    assert _statuses(table) == {
        "101": "not_for_sale",
        "102": "not_for_sale",
        "201": "available",
        "202": "restricted",
        "301": "not_for_sale",  # 物管用房
        "302": "available",  # a mortgage does not stop a presale
    }
    assert table["counts"]["available"] == 2 and table["counts"]["restricted"] == 1

    await register.lift_restriction(session, seizure.id, now=clock.now())
    await session.commit()
    assert _statuses(await _table(client, world))["202"] == "available"

    # Thirty-one days later the administrative restriction on 201 is in force.
    clock.advance(timedelta(days=31))
    assert _statuses(await _table(client, world))["201"] == "restricted"


async def test_expired_and_revoked_permits_stop_sales(
    client: Client, session: AsyncSession, clock: MovableClock
) -> None:
    world = await make_world(session, clock.now())
    now = clock.now()
    await grant_presale(session, world, now, ["201"], valid_until=world.today + timedelta(days=1))
    spot = await grant_presale(
        session, world, now, ["301"], kind=PermitKind.spot, number="测试现售备字(2026)第1号"
    )
    await session.commit()
    assert _statuses(await _table(client, world))["201"] == "available"
    clock.advance(timedelta(days=2))
    assert _statuses(await _table(client, world))["201"] == "not_for_sale"

    assert _statuses(await _table(client, world))["301"] == "available"
    await register.revoke_permit(session, spot.id, now=clock.now())
    await session.commit()
    assert _statuses(await _table(client, world))["301"] == "not_for_sale"


async def test_public_answers_carry_no_personal_data(
    client: Client, session: AsyncSession, clock: MovableClock, keys: ServiceKeys
) -> None:
    world = await make_world(session, clock.now())
    owner_id = "11010519491231002X"
    await register.register_title(
        session,
        keys,
        unit_id=world.units["101"],
        certificate_no="测(2020)测试不动产权第1号",
        check_code="ABC123",
        registered_on=world.today,
        now=clock.now(),
        owners=[register.TitleOwnerInput(name="张测试", id_number=owner_id)],
    )
    await session.commit()
    for url in (f"/api/v1/public/buildings/{world.building_id}/units", "/api/v1/public/projects"):
        body = (await client.get(url)).text
        assert owner_id not in body and "张测试" not in body and "ABC123" not in body


async def test_project_list_counts_and_filters(
    client: Client, session: AsyncSession, clock: MovableClock
) -> None:
    world = await make_world(session, clock.now())
    await grant_presale(session, world, clock.now(), ["201", "202"])
    await session.commit()
    page = (await client.get("/api/v1/public/projects")).json()
    assert page["total"] == 1
    project = page["items"][0]
    assert project["name"] == "测试花园"
    assert project["developer"]["name"] == "测试置业有限公司"
    assert project["buildings"] == [{"id": str(world.building_id), "name": "1栋", "units": 6}]
    assert project["counts"]["available"] == 2 and project["counts"]["not_for_sale"] == 4
    assert project["permits"][0]["in_force"] is True
    assert (await client.get("/api/v1/public/projects", params={"q": "不存在"})).json()[
        "total"
    ] == 0
    assert (await client.get("/api/v1/public/projects", params={"q": "花园"})).json()["total"] == 1


async def test_bad_ids_and_params_are_problems(client: Client) -> None:
    for url in (
        "/api/v1/public/buildings/not-a-uuid/units",
        "/api/v1/public/buildings/7b0f7d3c-9a43-4bb0-9a8e-6f1f3a1f0e4d/units",
    ):
        response = await client.get(url)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["code"] == "not_found" and body["status"] == 404 and "楼栋" in body["detail"]
    response = await client.get("/api/v1/public/projects", params={"limit": 1000})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_parameter"
    assert response.json()["errors"][0]["key"] == "limit"
