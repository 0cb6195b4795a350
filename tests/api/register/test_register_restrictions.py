"""Restrictions over HTTP: 司法查封 and 行政限制 stop sales until lifted, a 物管用房 is
never for sale while marked, a mortgage is only recorded."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock, business_date
from api.core.keys import ServiceKeys
from tests.api.register.helpers import (
    order_on,
    problem,
    public_statuses,
    register_units,
    register_world,
)

MISSING = "00000000-0000-4000-8000-000000000000"
SEIZURE = {
    "kind": "judicial_seizure",
    "authority": "示范市中心区人民法院",
    "document_no": "(2026)示0101执保456号",
}
LIFT = {"authority": "示范市中心区人民法院", "document_no": "(2026)示0101执保456号之一"}


async def test_a_seizure_stops_sales_until_a_court_lifts_it(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    today = business_date(clock.now())
    seized = await client.post(
        f"/api/v1/register/units/{r.units['201']}/restrictions", json=SEIZURE, headers=r.regulator
    )
    assert seized.status_code == 201, seized.text
    restriction = seized.json()
    assert restriction["starts_on"] == today.isoformat()  # today unless told
    assert restriction["in_effect"] is True and restriction["blocks_sale"] is True
    assert restriction["authority"] == SEIZURE["authority"]

    assert problem(await order_on(client, r, "201")) == (409, "unit_restricted")
    assert (await public_statuses(client, r))["201"] == "restricted"
    shown = (await register_units(client, r))["201"]
    assert shown["restricted"] is True and shown["saleable_as"] == []
    assert [x["id"] for x in shown["restrictions"]] == [restriction["id"]]

    lift = f"/api/v1/register/restrictions/{restriction['id']}/lift"
    assert problem(await client.post(lift, json={"authority": "法院"}, headers=r.regulator)) == (
        422,
        "invalid_body",
    )
    assert problem(await client.post(lift, json=LIFT, headers=r.agent)) == (403, "role_forbidden")
    lifted = await client.post(lift, json=LIFT, headers=r.regulator)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_at"] is not None and lifted.json()["in_effect"] is False
    assert lifted.json()["lift_document_no"] == LIFT["document_no"]
    assert lifted.json()["lift_authority"] == LIFT["authority"]
    assert problem(await client.post(lift, json=LIFT, headers=r.regulator)) == (
        409,
        "restriction_already_lifted",
    )

    assert (await public_statuses(client, r))["201"] == "available"
    assert (await register_units(client, r))["201"]["restrictions"] == []
    assert (await order_on(client, r, "201")).status_code == 201


async def test_restrictions_refuse_bad_input(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    today = business_date(clock.now())
    url = f"/api/v1/register/units/{r.units['203']}/restrictions"
    backwards = {
        **SEIZURE,
        "starts_on": today.isoformat(),
        "ends_on": (today - timedelta(days=1)).isoformat(),
    }
    cases = [
        (url, backwards, (422, "restriction_dates_invalid")),
        (url, {**SEIZURE, "kind": "curfew"}, (422, "invalid_body")),
        (url, {**SEIZURE, "document_no": " "}, (422, "invalid_body")),
        (url, {"kind": "administrative", "authority": "住建局"}, (422, "invalid_body")),
        (f"/api/v1/register/units/{MISSING}/restrictions", SEIZURE, (404, "not_found")),
        ("/api/v1/register/units/101x/restrictions", SEIZURE, (404, "not_found")),
    ]
    for path, body, expected in cases:
        assert problem(await client.post(path, json=body, headers=r.regulator)) == expected, body
    assert problem(await client.post(url, json=SEIZURE, headers=r.admin)) == (403, "role_forbidden")
    lift_missing = f"/api/v1/register/restrictions/{MISSING}/lift"
    assert problem(await client.post(lift_missing, json=LIFT, headers=r.regulator)) == (
        404,
        "not_found",
    )

    # An administrative restriction that starts next week does not stop a sale today.
    later = {
        "kind": "administrative",
        "authority": "示范市住房和城乡建设局",
        "document_no": "示住建限(2026)7号",
        "starts_on": (today + timedelta(days=7)).isoformat(),
    }
    future = await client.post(url, json=later, headers=r.regulator)
    assert future.status_code == 201 and future.json()["in_effect"] is False
    assert (await public_statuses(client, r))["203"] == "available"
    clock.advance(timedelta(days=7))
    assert (await public_statuses(client, r))["203"] == "restricted"


async def test_property_management_rooms_are_marked_and_unmarked(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    mark = {
        "kind": "property_management",
        "authority": "示范市住房和城乡建设局",
        "document_no": "物管用房确认(2026)002号",
    }
    url = f"/api/v1/register/units/{r.units['204']}/restrictions"
    marked = await client.post(url, json=mark, headers=r.regulator)
    assert marked.status_code == 201, marked.text
    assert marked.json()["blocks_sale"] is True
    assert problem(await client.post(url, json=mark, headers=r.regulator)) == (
        409,
        "unit_already_property_management",
    )
    assert problem(await order_on(client, r, "204")) == (409, "unit_not_for_sale")
    assert (await public_statuses(client, r))["204"] == "not_for_sale"
    assert (await register_units(client, r))["204"]["property_management"] is True

    unmarked = await client.post(
        f"/api/v1/register/restrictions/{marked.json()['id']}/lift",
        json={"authority": "示范市住房和城乡建设局", "document_no": "物管用房变更(2026)001号"},
        headers=r.regulator,
    )
    assert unmarked.status_code == 200, unmarked.text
    assert (await public_statuses(client, r))["204"] == "available"
    assert (await order_on(client, r, "204")).status_code == 201
    # Marking again after unmarking is a new designation.
    assert (await client.post(url, json=mark, headers=r.regulator)).status_code == 201


async def test_a_mortgage_is_recorded_and_does_not_stop_a_sale(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    mortgage = {
        "kind": "mortgage",
        "authority": "示范银行明湖支行",
        "document_no": "在建工程抵押(2026)第33号",
    }
    recorded = await client.post(
        f"/api/v1/register/units/{r.units['303']}/restrictions", json=mortgage, headers=r.regulator
    )
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["in_effect"] is True and recorded.json()["blocks_sale"] is False
    shown = (await register_units(client, r))["303"]
    assert shown["mortgaged"] is True and shown["saleable_as"] == ["presale"]
    assert (await public_statuses(client, r))["303"] == "available"
    assert (await order_on(client, r, "303")).status_code == 201
