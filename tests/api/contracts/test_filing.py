"""Filing (备案) over HTTP: a sealed contract waits for a regulator, who files it or sends it
back with a reason; the company resubmits; the public sees 已备案 and can verify by filing
number. In "auto" mode the seal files it at once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import msgspec
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import PEOPLE
from api.outbox.models import OutboxMessage
from api.settings import Settings
from tests.api.contracts.helpers import LI, ZHANG, demo, problem, signed_contract
from tests.api.identity.helpers import bearer, login_phone
from tests.api.outbox.helpers import recipient

REGULATOR = next(p for p in PEOPLE if p.role == "regulator")
ADMIN = next(p for p in PEOPLE if p.role == "company_admin")


async def _messages(database: Database, keys: ServiceKeys, template: str) -> list[dict[str, str]]:
    async with database.reader() as reader:
        rows = await reader.scalars(select(OutboxMessage).where(OutboxMessage.template == template))
        return [
            {
                "phone": recipient(keys, row) or "",
                **json.loads(keys.pii.decrypt(row.params_encrypted, field="outbox.params")),
            }
            for row in rows
        ]


async def _unit_status(client: httpx.AsyncClient, building_id: str, room: str) -> str:
    table = (await client.get(f"/api/v1/public/buildings/{building_id}/units")).json()
    return next(u["status"] for u in table["units"] if u["room_no"] == room)


async def test_a_regulator_sends_back_then_files_and_the_public_sees_it(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    regulator = bearer(await login_phone(client, REGULATOR.phone))
    admin = bearer(await login_phone(client, ADMIN.phone))
    contract = await signed_contract(client, d, "201", ZHANG, LI)
    order_id, zhang = contract.order_id, bearer(contract.tokens[ZHANG.name])
    assert contract.order["status"] == "filing_pending"
    building = d.world["building"]["id"]

    # The regulator's queue; the company sees its own; citizens see no queue.
    queue = await client.get("/api/v1/filings", params={"status": "pending"}, headers=regulator)
    assert [o["id"] for o in queue.json()["items"]] == [order_id]
    own = await client.get("/api/v1/filings", headers=admin)
    assert own.json()["total"] == 1
    assert problem(await client.get("/api/v1/filings", headers=zhang)) == (403, "staff_only")
    later = await client.get(
        "/api/v1/filings",
        params={"from": (clock.now() + timedelta(days=2)).date().isoformat()},
        headers=regulator,
    )
    assert later.json()["total"] == 0
    # The regulator reads the contract, its document and its evidence.
    for path in ("", "/document", "/evidence", "/events"):
        read = await client.get(f"/api/v1/contracts/{order_id}{path}", headers=regulator)
        assert read.status_code == 200, (path, read.text)

    approve = f"/api/v1/contracts/{order_id}/filing/approve"
    reject = f"/api/v1/contracts/{order_id}/filing/reject"
    resubmit = f"/api/v1/contracts/{order_id}/filing/resubmit"
    # Only a regulator decides; a reason is required to send it back.
    assert problem(await client.post(approve, headers=bearer(d.agent))) == (403, "role_forbidden")
    assert problem(await client.post(reject, json={"reason": "  "}, headers=regulator)) == (
        422,
        "reason_required",
    )
    assert problem(await client.post(resubmit, json={"note": "x"}, headers=admin)) == (
        409,
        "filing_not_pending",
    )
    sent_back = await client.post(reject, json={"reason": "缺少首付款凭证"}, headers=regulator)
    assert sent_back.status_code == 200, sent_back.text
    assert sent_back.json()["status"] == "filing_rejected"
    seen = (await client.get(f"/api/v1/contracts/{order_id}", headers=bearer(d.agent))).json()
    assert seen["filing_rejection_reason"] == "缺少首付款凭证"
    assert problem(await client.post(approve, headers=regulator)) == (409, "filing_not_pending")
    rejected_sms = await _messages(database, keys, "filing_rejected")
    assert sorted(m["phone"] for m in rejected_sms) == sorted([ZHANG.phone, LI.phone])
    assert rejected_sms[0]["reason"] == "缺少首付款凭证"

    again = await client.post(resubmit, json={"note": "已补充凭证"}, headers=bearer(d.agent))
    assert again.status_code == 200, again.text
    assert (
        again.json()["status"] == "filing_pending" and again.json()["filing_note"] == "已补充凭证"
    )
    assert await _unit_status(client, building, "201") == "signed"

    filed = await client.post(approve, headers=regulator)
    assert filed.status_code == 200, filed.text
    answer = filed.json()
    assert answer["status"] == "filed" and answer["filing_number"].startswith("BA2026")
    assert answer["filed_at"] is not None
    assert await _unit_status(client, building, "201") == "filed"
    filed_sms = await _messages(database, keys, "contract_filed")
    assert {m["filing_number"] for m in filed_sms} == {answer["filing_number"]}
    assert len(filed_sms) == 2
    types = [
        e["type"]
        for e in (await client.get(f"/api/v1/contracts/{order_id}/events", headers=zhang)).json()[
            "events"
        ]
    ]
    filing = [t for t in types if t.startswith("filing_") or t == "filed"]
    assert filing == ["filing_submitted", "filing_rejected", "filing_resubmitted", "filed"]

    # The public verifies by filing number as well as by contract number.
    for number in (answer["filing_number"], contract.number):
        checked = (
            await client.get(
                "/api/v1/public/verify", params={"number": number, "password": contract.password}
            )
        ).json()
        assert checked["genuine"] is True and checked["status"] == "filed"
        assert checked["contract_number"] == contract.number
        assert checked["filing_number"] == answer["filing_number"]
        assert checked["unit"]["use"] == "住宅" and checked["unit"]["building_area"] == "118.36"
        assert checked["unit"]["address"]
    assert (
        await client.get(
            "/api/v1/public/verify",
            params={"number": answer["filing_number"], "password": "00000000"},
        )
    ).json() == {"genuine": False, "contract_number": answer["filing_number"]}


@pytest.fixture
async def auto_client(
    mock_settings: Settings, clock: MovableClock, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    loopback = httpx.ASGITransport(app=None)  # type: ignore[arg-type]
    app = create_app(
        msgspec.structs.replace(mock_settings, filing_mode="auto"),
        clock=clock,
        database=database,
        http_transport=loopback,
    )
    loopback.app = app
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


async def test_in_auto_mode_the_seal_files_the_contract(
    auto_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    d = await demo(auto_client, session, keys, clock)
    contract = await signed_contract(auto_client, d, "202", ZHANG)
    assert contract.order["status"] == "filed"
    assert contract.order["filing_number"].startswith("BA2026")
    regulator = bearer(await login_phone(auto_client, REGULATOR.phone))
    queue = await auto_client.get("/api/v1/filings", headers=regulator)
    assert queue.json()["total"] == 0
    done = await auto_client.get("/api/v1/filings", params={"status": "filed"}, headers=regulator)
    assert [o["id"] for o in done.json()["items"]] == [contract.order_id]
    assert problem(
        await auto_client.post(
            f"/api/v1/contracts/{contract.order_id}/filing/approve", headers=regulator
        )
    ) == (409, "filing_not_pending")
