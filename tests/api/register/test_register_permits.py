"""Permits over HTTP: a regulator grants, changes (started, then approved or rejected) and
revokes; order creation and the public building table follow at once."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock, business_date
from api.core.keys import ServiceKeys
from api.register.models import PermitKind
from api.register.queries import unit_sale_facts
from tests.api.identity.helpers import bearer, login_phone
from tests.api.register.helpers import (
    Register,
    order_on,
    problem,
    public_statuses,
    register_units,
    register_world,
)

MISSING = "00000000-0000-4000-8000-000000000000"


def _permit(r: Register, rooms: list[str], today: date, **overrides: Any) -> dict[str, Any]:
    body = {
        "project_id": r.project_id,
        "kind": "spot",
        "number": "示范现售备字(2026)第0002号",
        "issuer": "示范市住房和城乡建设局",
        "valid_from": today.isoformat(),
        "valid_until": (today + timedelta(days=180)).isoformat(),
        "unit_ids": [r.units[room] for room in rooms],
    }
    body.update(overrides)
    return body


async def test_a_regulator_grants_a_permit_and_the_units_go_on_sale(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    today = business_date(clock.now())
    assert (await public_statuses(client, r))["102"] == "not_for_sale"
    assert problem(await order_on(client, r, "102", kind="spot")) == (409, "permit_not_found")

    granted = await client.post(
        "/api/v1/register/permits", json=_permit(r, ["102", "103"], today), headers=r.regulator
    )
    assert granted.status_code == 201, granted.text
    permit = granted.json()
    assert permit["status"] == "in_force" and permit["kind"] == "spot"
    assert sorted(permit["unit_ids"]) == sorted([r.units["102"], r.units["103"]])
    assert permit["open_change"] is None

    statuses = await public_statuses(client, r)
    assert statuses["102"] == statuses["103"] == "available" and statuses["104"] == "not_for_sale"
    assert (await register_units(client, r))["102"]["saleable_as"] == ["spot"]
    assert (await order_on(client, r, "102", kind="spot")).status_code == 201
    shown = await client.get(f"/api/v1/register/permits/{permit['id']}", headers=r.regulator)
    assert shown.status_code == 200 and shown.json()["number"] == "示范现售备字(2026)第0002号"


async def test_granting_refuses_bad_permits(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    today = business_date(clock.now())
    resale_unit = r.world["resale_title"]["unit_id"]
    backwards = {"valid_from": today.isoformat(), "valid_until": (today - timedelta(1)).isoformat()}
    cases = [
        (_permit(r, ["102"], today, project_id=MISSING), (404, "not_found")),
        (_permit(r, ["102"], today, unit_ids=[MISSING]), (404, "unit_not_found")),
        (_permit(r, ["102"], today, unit_ids=[resale_unit]), (422, "permit_units_invalid")),
        (_permit(r, ["102"], today, **backwards), (422, "permit_dates_invalid")),
        (_permit(r, ["102"], today, unit_ids=[]), (422, "invalid_body")),
        (_permit(r, ["102"], today, number="   "), (422, "invalid_body")),
        (_permit(r, ["102"], today, kind="rental"), (422, "invalid_body")),
        (_permit(r, ["102"], today, colour="red"), (422, "unknown_field")),
        # 201 already has the demo presale permit for the same days.
        (_permit(r, ["102", "201"], today, kind="presale"), (409, "permit_overlaps")),
        (_permit(r, ["102"], today, number=r.world["permit"]["number"]), (409, "permit_exists")),
    ]
    for body, expected in cases:
        answer = await client.post("/api/v1/register/permits", json=body, headers=r.regulator)
        assert problem(answer) == expected, (body, answer.text)
    overlap = await client.post(
        "/api/v1/register/permits",
        json=_permit(r, ["102", "201"], today, kind="presale"),
        headers=r.regulator,
    )
    assert overlap.json()["unit_ids"] == [r.units["201"]]
    assert overlap.json()["permits"] == [r.world["permit"]["number"]]
    # A presale permit for 201 starting after the demo permit ends does not overlap; a
    # spot permit may cover a unit that also has a presale permit.
    demo_permit = (
        await client.get(f"/api/v1/register/permits/{r.permit_id}", headers=r.regulator)
    ).json()
    later = date.fromisoformat(demo_permit["valid_until"]) + timedelta(days=1)
    after = _permit(
        r,
        ["201"],
        later,
        kind="presale",
        number="示范预售许字(2027)第0001号",
    )
    assert (
        await client.post("/api/v1/register/permits", json=after, headers=r.regulator)
    ).status_code == 201
    spot = _permit(r, ["201"], today, number="示范现售备字(2026)第0009号")
    assert (
        await client.post("/api/v1/register/permits", json=spot, headers=r.regulator)
    ).status_code == 201

    # Only regulators.
    citizen = bearer(await login_phone(client, "13900000001"))
    body = _permit(r, ["104"], today, number="X-1")
    for headers, expected in (
        (r.agent, (403, "role_forbidden")),
        (r.admin, (403, "role_forbidden")),
        (citizen, (403, "staff_only")),
    ):
        assert (
            problem(await client.post("/api/v1/register/permits", json=body, headers=headers))
            == expected
        )
    assert (await client.post("/api/v1/register/permits", json=body)).status_code == 401


async def test_a_permit_change_holds_its_units_until_decided(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    today = business_date(clock.now())
    assert (await public_statuses(client, r))["201"] == "available"
    # A draft made before the change cannot be issued while it is open either: signing
    # may not start until the permit says which units are for sale.
    draft = await order_on(client, r, "301")
    assert draft.status_code == 201, draft.text
    demo_units = (
        await client.get(f"/api/v1/register/permits/{r.permit_id}", headers=r.regulator)
    ).json()["unit_ids"]
    # The change takes 202 out of the permit and puts 102 in (seed 001 5.4.2).
    proposed = [u for u in demo_units if u != r.units["202"]] + [r.units["102"]]
    started = await client.post(
        f"/api/v1/register/permits/{r.permit_id}/changes",
        json={"document_no": "示范预变(2026)001号", "reason": "调整预售范围", "unit_ids": proposed},
        headers=r.regulator,
    )
    assert started.status_code == 201, started.text
    change = started.json()
    assert change["status"] == "open"
    assert change["added_unit_ids"] == [r.units["102"]]
    assert change["removed_unit_ids"] == [r.units["202"]]

    # While it is open: no new order on any unit it touches, and the public sees them as
    # not for sale; units outside it are unaffected.
    for room in ("201", "202", "102"):
        refused = await order_on(client, r, room)
        assert problem(refused) == (409, "permit_change_pending"), room
        assert "变更" in refused.json()["detail"]
    issue = await client.post(f"/api/v1/contracts/{draft.json()['id']}/issue", headers=r.agent)
    assert problem(issue) == (409, "permit_change_pending")
    statuses = await public_statuses(client, r)
    assert statuses["201"] == statuses["202"] == statuses["102"] == "not_for_sale"
    assert statuses["103"] == "not_for_sale"
    units = await register_units(client, r)
    assert units["201"]["permit_change_pending"] is True and units["201"]["saleable_as"] == []
    assert units["201"]["permits"][0]["change_open"] is True
    permit = (
        await client.get(f"/api/v1/register/permits/{r.permit_id}", headers=r.regulator)
    ).json()
    assert permit["open_change"]["id"] == change["id"] and permit["status"] == "in_force"

    # One change at a time; the permit cannot be revoked under it.
    again = await client.post(
        f"/api/v1/register/permits/{r.permit_id}/changes",
        json={
            "document_no": "示范预变(2026)002号",
            "valid_until": (today + timedelta(900)).isoformat(),
        },
        headers=r.regulator,
    )
    assert problem(again) == (409, "permit_change_open")
    revoke = await client.post(
        f"/api/v1/register/permits/{r.permit_id}/revoke",
        json={"document_no": "撤(2026)1号", "reason": "违规销售"},
        headers=r.regulator,
    )
    assert problem(revoke) == (409, "permit_change_open")

    approved = await client.post(
        f"/api/v1/register/permit-changes/{change['id']}/approve", json={}, headers=r.regulator
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["decided_at"]
    twice = await client.post(
        f"/api/v1/register/permit-changes/{change['id']}/approve", json={}, headers=r.regulator
    )
    assert problem(twice) == (409, "permit_change_decided")

    # At once: 201 and 102 for sale under the changed permit, 202 no longer.
    statuses = await public_statuses(client, r)
    assert (statuses["201"], statuses["102"], statuses["202"]) == (
        "available",
        "available",
        "not_for_sale",
    )
    assert (await order_on(client, r, "201")).status_code == 201
    assert (await order_on(client, r, "102")).status_code == 201
    assert problem(await order_on(client, r, "202")) == (409, "permit_not_found")
    issued = await client.post(f"/api/v1/contracts/{draft.json()['id']}/issue", headers=r.agent)
    assert issued.status_code == 200, issued.text


async def test_a_rejected_change_leaves_the_permit_as_it_was(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    today = business_date(clock.now())
    before = (
        await client.get(f"/api/v1/register/permits/{r.permit_id}", headers=r.regulator)
    ).json()
    changes = f"/api/v1/register/permits/{r.permit_id}/changes"
    cases = [
        ({"document_no": "变(2026)1号"}, (422, "permit_change_empty")),
        (
            {
                "document_no": "变(2026)1号",
                "valid_from": before["valid_from"],
                "valid_until": before["valid_from"][:4] + "-01-01",
            },
            (422, "permit_dates_invalid"),
        ),
        ({"document_no": "变(2026)1号", "unit_ids": [MISSING]}, (404, "unit_not_found")),
        ({"document_no": "", "valid_until": "2030-01-01"}, (422, "invalid_body")),
    ]
    for body, expected in cases:
        assert problem(await client.post(changes, json=body, headers=r.regulator)) == expected, body
    assert problem(
        await client.post(
            f"/api/v1/register/permits/{MISSING}/changes",
            json={"document_no": "x", "valid_until": "2030-01-01"},
            headers=r.regulator,
        )
    ) == (404, "not_found")
    assert problem(
        await client.post(
            "/api/v1/register/permits/not-an-id/changes",
            json={"document_no": "x", "valid_until": "2030-01-01"},
            headers=r.regulator,
        )
    ) == (404, "not_found")

    longer = (today + timedelta(days=900)).isoformat()
    started = await client.post(
        changes, json={"document_no": "变(2026)1号", "valid_until": longer}, headers=r.regulator
    )
    assert started.status_code == 201, started.text
    assert started.json()["added_unit_ids"] == started.json()["removed_unit_ids"] == []
    change_id = started.json()["id"]
    assert problem(await order_on(client, r, "301")) == (409, "permit_change_pending")

    decide = f"/api/v1/register/permit-changes/{change_id}"
    assert problem(await client.post(f"{decide}/reject", json={}, headers=r.regulator)) == (
        422,
        "reason_required",
    )
    assert problem(await client.post(f"{decide}/approve", json={}, headers=r.agent)) == (
        403,
        "role_forbidden",
    )
    assert problem(
        await client.post(
            f"/api/v1/register/permit-changes/{MISSING}/approve", json={}, headers=r.regulator
        )
    ) == (404, "not_found")
    rejected = await client.post(
        f"{decide}/reject", json={"reason": "材料不全"}, headers=r.regulator
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["decision_reason"] == "材料不全"
    assert problem(await client.post(f"{decide}/approve", json={}, headers=r.regulator)) == (
        409,
        "permit_change_decided",
    )

    after = (
        await client.get(f"/api/v1/register/permits/{r.permit_id}", headers=r.regulator)
    ).json()
    assert after["valid_until"] == before["valid_until"] and after["unit_ids"] == before["unit_ids"]
    assert after["open_change"] is None
    assert (await public_statuses(client, r))["301"] == "available"
    assert (await order_on(client, r, "301")).status_code == 201


async def test_revoking_a_permit_stops_its_sales(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    r = await register_world(client, session, keys, clock)
    revoke = f"/api/v1/register/permits/{r.permit_id}/revoke"
    body = {"document_no": "示范撤字(2026)1号", "reason": "虚假申报"}
    assert problem(await client.post(revoke, json={"document_no": "x"}, headers=r.regulator)) == (
        422,
        "invalid_body",
    )
    assert problem(await client.post(revoke, json=body, headers=r.admin)) == (403, "role_forbidden")
    assert problem(
        await client.post(
            f"/api/v1/register/permits/{MISSING}/revoke", json=body, headers=r.regulator
        )
    ) == (404, "not_found")

    revoked = await client.post(revoke, json=body, headers=r.regulator)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revoke_document_no"] == "示范撤字(2026)1号"
    assert revoked.json()["revoke_reason"] == "虚假申报"
    assert problem(await client.post(revoke, json=body, headers=r.regulator)) == (
        409,
        "permit_already_revoked",
    )
    change = await client.post(
        f"/api/v1/register/permits/{r.permit_id}/changes",
        json={"document_no": "变(2026)9号", "valid_until": "2030-01-01"},
        headers=r.regulator,
    )
    assert problem(change) == (409, "permit_revoked")

    statuses = await public_statuses(client, r)
    assert statuses["201"] == statuses["604"] == "not_for_sale"
    assert problem(await order_on(client, r, "201")) == (409, "permit_not_found")


async def test_the_registers_word_on_units_is_one_statement(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    """Asked at each order's creation, issue and sealing: permits in force, restrictions
    and open permit changes come back together."""
    client = mock_client
    r = await register_world(client, session, keys, clock)
    demo_units = (
        await client.get(f"/api/v1/register/permits/{r.permit_id}", headers=r.regulator)
    ).json()["unit_ids"]
    started = await client.post(
        f"/api/v1/register/permits/{r.permit_id}/changes",
        json={
            "document_no": "示范预变(2026)003号",
            "reason": "调整预售范围",
            "unit_ids": [u for u in demo_units if u != r.units["202"]],
        },
        headers=r.regulator,
    )
    assert started.status_code == 201, started.text
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):  # the session's own, on SQLite
            statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        facts = await unit_sale_facts(
            session,
            today=business_date(clock.now()),
            unit_ids=[uuid.UUID(r.units[room]) for room in ("201", "202", "103")],
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1
    held = facts[uuid.UUID(r.units["201"])]
    assert held.permit_kinds == frozenset()
    assert held.changing_permit_kinds == {PermitKind.presale}
    assert facts[uuid.UUID(r.units["202"])].changing_permit_kinds == {PermitKind.presale}
    assert uuid.UUID(r.units["103"]) not in facts  # outside the permit: no facts at all
