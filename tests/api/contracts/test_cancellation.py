"""Cancelling a signed new-home contract (退房) over HTTP: a buyer starts it, every buyer
signs the termination after a fresh face check, the developer seals, the regulator reads
the documents and decides; on approval the unit is for sale again and every supervised
fen goes back to the buyers, even a payment that arrives afterwards."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import DEMO_ACCOUNT_NUMBER, PEOPLE
from api.escrow.reconcile import reconcile
from api.outbox.models import OutboxMessage
from api.settings import Settings
from signing.evidence_verify import verify_bundle
from tests.api.contracts.helpers import (
    LI,
    SEAL_KEEPER,
    WANG,
    ZHANG,
    Demo,
    Signed,
    create,
    demo,
    face_verified,
    latest_code,
    order_body,
    pay_notice,
    problem,
    prove_identity,
    scan,
    signed_contract,
)
from tests.api.identity.helpers import bearer, login_phone
from tests.api.outbox.helpers import recipient

REGULATOR = next(p for p in PEOPLE if p.role == "regulator")
ADMIN = next(p for p in PEOPLE if p.role == "company_admin")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def _sign(
    client: httpx.AsyncClient, token: str, cancellation_id: str, phone: str
) -> httpx.Response:
    base = f"/api/v1/cancellations/{cancellation_id}"
    challenge = await client.post(f"{base}/signatures/challenge", headers=bearer(token))
    assert challenge.status_code == 200, challenge.text
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": await latest_code(client, phone),
    }
    return await client.post(f"{base}/signatures", json=body, headers=bearer(token))


async def _seal(client: httpx.AsyncClient, d: Demo, cancellation_id: str) -> httpx.Response:
    base = f"/api/v1/cancellations/{cancellation_id}"
    challenge = await client.post(f"{base}/seal/challenge", headers=bearer(d.seal_keeper))
    assert challenge.status_code == 200, challenge.text
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": await latest_code(client, SEAL_KEEPER.phone),
    }
    return await client.post(f"{base}/seal", json=body, headers=bearer(d.seal_keeper))


async def _upload(
    client: httpx.AsyncClient,
    token: dict[str, str],
    cancellation_id: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
) -> httpx.Response:
    return await client.post(
        f"/api/v1/cancellations/{cancellation_id}/documents",
        files={"file": (name, data, content_type)},
        headers=token,
    )


async def _signed_by_all(
    client: httpx.AsyncClient, d: Demo, contract: Signed, started: dict[str, Any]
) -> None:
    """Both buyers scan the cancellation, sign it, and the developer seals it."""
    for person in (ZHANG, LI):
        token = contract.tokens[person.name]
        scanned = await scan(client, token, started["scene"])
        assert scanned.status_code == 200, scanned.text
        assert scanned.json()["cancellation_id"] == started["id"]
        signed = await _sign(client, token, started["id"], person.phone)
        assert signed.status_code == 200, signed.text
    sealed = await _seal(client, d, started["id"])
    assert sealed.status_code == 200, sealed.text
    assert sealed.json()["status"] == "awaiting_review"


async def _statement(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, Any]:
    accounts = (await client.get("/api/v1/escrow/accounts", headers=admin)).json()["items"]
    return (
        await client.get(f"/api/v1/escrow/accounts/{accounts[0]['id']}/statement", headers=admin)
    ).json()


async def test_buyers_sign_the_termination_and_the_regulator_decides(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    settings: Settings,
    database: Database,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    regulator = bearer(await login_phone(client, REGULATOR.phone))
    contract = await signed_contract(client, d, "201", ZHANG, LI)
    zhang, li = (bearer(contract.tokens[p.name]) for p in (ZHANG, LI))
    filed = await client.post(
        f"/api/v1/contracts/{contract.order_id}/filing/approve", headers=regulator
    )
    assert filed.json()["status"] == "filed"
    await pay_notice(client, d.agent, contract.order_id, "down_payment", amount_fen=100_000_00)
    start = f"/api/v1/contracts/{contract.order_id}/cancellation"

    # Strangers and empty reasons are refused; a buyer starts it for themself.
    wang = bearer(await face_verified(client, WANG))
    assert problem(await client.post(start, json={"reason": "x"}, headers=wang)) == (
        403,
        "not_a_party",
    )
    assert problem(await client.post(start, json={"reason": "  "}, headers=zhang)) == (
        422,
        "reason_required",
    )
    started = await client.post(start, json={"reason": "个人原因，申请退房"}, headers=zhang)
    assert started.status_code == 201, started.text
    first = started.json()
    assert first["status"] == "awaiting_signatures" and first["applicants"] == ["张*"]
    assert first["scan_url"].endswith("/miniapp/#/scan/" + first["scene"])
    again = await client.post(start, json={"reason": "重复"}, headers=li)
    assert problem(again) == (409, "cancellation_open")
    order = (await client.get(f"/api/v1/contracts/{contract.order_id}", headers=zhang)).json()
    assert order["status"] == "cancellation_pending"
    agreement = (
        await client.get(f"/api/v1/cancellations/{first['id']}/document", headers=li)
    ).json()["document"]
    assert agreement["template_id"] == "wq-termination"
    terms = agreement["terms"]
    assert terms["contract"]["contract_number"] == contract.number
    assert terms["contract"]["filing_number"]
    assert terms["refund_fen"] == 50_000_00 + 100_000_00
    assert terms["applicants"] == [ZHANG.name]
    text = "".join("".join(c["clauses"]) for c in agreement["text"]["chapters"])
    assert "备案号" + terms["contract"]["filing_number"] in text
    assert [p["role"] for p in terms["parties"]] == ["buyer", "buyer", "seal"]
    # Only whoever started it withdraws it; then the contract is as it was.
    assert problem(
        await client.post(f"/api/v1/cancellations/{first['id']}/withdraw", headers=li)
    ) == (403, "not_the_applicant")
    withdrawn = await client.post(f"/api/v1/cancellations/{first['id']}/withdraw", headers=zhang)
    assert withdrawn.json()["status"] == "withdrawn"
    order = (await client.get(f"/api/v1/contracts/{contract.order_id}", headers=zhang)).json()
    assert order["status"] == "filed"
    assert problem(await scan(client, contract.tokens[ZHANG.name], first["scene"])) == (
        409,
        "cancellation_closed",
    )

    # The agent starts it again for both buyers.
    second = (
        await client.post(
            start,
            json={"reason": "双方协商解除", "applicants": [p["id"] for p in order["parties"]]},
            headers=bearer(d.agent),
        )
    ).json()
    assert second["applicants"] == ["张*", "李*"]
    cid = second["id"]
    # Nothing is sealed or decided before every buyer signed.
    seal_early = await client.post(
        f"/api/v1/cancellations/{cid}/seal/challenge", headers=bearer(d.seal_keeper)
    )
    assert problem(seal_early) == (409, "cancellation_not_ready")
    assert problem(
        await client.post(f"/api/v1/cancellations/{cid}/approve", headers=regulator)
    ) == (409, "cancellation_not_ready")
    # A face check older than ten minutes is not enough to sign.
    clock.advance(timedelta(minutes=11))
    stale = await client.post(f"/api/v1/cancellations/{cid}/signatures/challenge", headers=zhang)
    assert problem(stale) == (403, "face_check_stale")
    for person in (ZHANG, LI):
        await prove_identity(client, contract.tokens[person.name], person)
    await _signed_by_all(client, d, contract, second)

    # Supporting documents: what the bytes are decides; the same file is one document.
    uploaded = await _upload(client, regulator, cid, "退房申请书.pdf", PDF, "application/pdf")
    assert uploaded.status_code == 201, uploaded.text
    doc = uploaded.json()
    assert doc["sha256"] == hashlib.sha256(PDF).hexdigest() and doc["size_bytes"] == len(PDF)
    same = await _upload(client, bearer(d.agent), cid, "copy.pdf", PDF)
    assert same.json()["id"] == doc["id"]
    assert problem(await _upload(client, zhang, cid, "收据.pdf", PNG)) == (
        422,
        "document_type_mismatch",
    )
    assert problem(await _upload(client, zhang, cid, "收据.png", PNG, "application/pdf")) == (
        422,
        "document_type_mismatch",
    )
    assert problem(await _upload(client, zhang, cid, "a.txt", b"hello")) == (
        415,
        "document_type_unsupported",
    )
    assert problem(await _upload(client, zhang, cid, "empty.png", b"")) == (422, "document_empty")
    assert problem(await _upload(client, wang, cid, "x.png", PNG)) == (404, "not_found")
    photo = await _upload(client, li, cid, "../../身份证.png", PNG)
    assert photo.status_code == 201 and photo.json()["filename"] == "身份证.png"
    fetched = await client.get(
        f"/api/v1/cancellations/{cid}/documents/{doc['id']}", headers=regulator
    )
    assert fetched.content == PDF and fetched.headers["content-type"] == "application/pdf"

    # The regulator rejects: the contract stands, filed as before.
    assert problem(
        await client.post(
            f"/api/v1/cancellations/{cid}/reject", json={"reason": " "}, headers=regulator
        )
    ) == (422, "reason_required")
    rejected = await client.post(
        f"/api/v1/cancellations/{cid}/reject", json={"reason": "凭证不全"}, headers=regulator
    )
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decision_reason"] == "凭证不全"
    order = (await client.get(f"/api/v1/contracts/{contract.order_id}", headers=zhang)).json()
    assert order["status"] == "filed"
    listed = (await client.get("/api/v1/cancellations", headers=regulator)).json()
    assert sorted(c["status"] for c in listed["items"]) == ["rejected", "withdrawn"]
    assert (await client.get("/api/v1/cancellations", headers=wang)).json()["total"] == 0
    bundle = await client.get(f"/api/v1/cancellations/{cid}/evidence", headers=zhang)
    root = (settings.data_dir / "keystore" / "root.crt.pem").read_bytes()
    report = verify_bundle(bundle.json(), root)
    assert report.ok, report.to_text()
    assert len(bundle.json()["signatures"]) == 3


async def test_approval_frees_the_unit_and_refunds_every_fen_even_a_late_payment(
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
    contract = await signed_contract(client, d, "202", ZHANG, LI)
    zhang = bearer(contract.tokens[ZHANG.name])
    await pay_notice(client, d.agent, contract.order_id, "down_payment", amount_fen=200_000_00)
    started = (
        await client.post(
            f"/api/v1/contracts/{contract.order_id}/cancellation",
            json={"reason": "贷款未获批准"},
            headers=zhang,
        )
    ).json()
    await _signed_by_all(client, d, contract, started)

    approved = await client.post(
        f"/api/v1/cancellations/{started['id']}/approve", headers=regulator
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    order = (await client.get(f"/api/v1/contracts/{contract.order_id}", headers=zhang)).json()
    assert order["status"] == "cancelled"
    table = (await client.get(f"/api/v1/public/buildings/{d.world['building']['id']}/units")).json()
    assert next(u["status"] for u in table["units"] if u["room_no"] == "202") == "available"
    checked = await client.get(
        "/api/v1/public/verify", params={"number": contract.number, "password": contract.password}
    )
    assert checked.json()["status"] == "cancelled"

    # Every fen held is instructed back; the notices ask for nothing more.
    statement = await _statement(client, admin)
    refunds = [i for i in statement["instructions"] if i["kind"] == "refund"]
    assert [(i["amount_fen"], i["status"]) for i in refunds] == [(250_000_00, "approved")]
    notices = (
        await client.get(f"/api/v1/contracts/{contract.order_id}/payment-notices", headers=zhang)
    ).json()["items"]
    assert {n["status"] for n in notices} == {"cancelled"}
    assert all(n["pay_url"] is None for n in notices)
    # A payment already on its way when it was approved goes back too, never onwards.
    down = next(n for n in notices if n["kind"] == "down_payment")
    late = await client.post(
        "/mock/bank/payments",
        json={
            "reference": down["reference"],
            "amount_fen": 30_000_00,
            "account": DEMO_ACCOUNT_NUMBER,
        },
    )
    assert late.json()["answer"]["outcome"] == "refunded"
    statement = await _statement(client, admin)
    refunds = [i for i in statement["instructions"] if i["kind"] == "refund"]
    assert sorted(i["amount_fen"] for i in refunds) == [30_000_00, 250_000_00]
    for instruction in refunds:
        done = await client.post(
            f"/mock/bank/instructions/{instruction['id']}/execute",
            json={
                "kind": "refund",
                "account_number": DEMO_ACCOUNT_NUMBER,
                "amount_fen": instruction["amount_fen"],
            },
        )
        assert done.json()["status"] == 200, done.text
    balances = (await _statement(client, admin))["balances"]
    assert balances["held_for_contracts_fen"] == 0 and balances["refunds_pending_fen"] == 0
    assert balances["released_fen"] == 0
    async with database.reader() as reader:
        assert await reconcile(reader) == []
        sent = {
            (m.template, recipient(keys, m))
            for m in await reader.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.template.in_(["contract_cancelled", "refund_completed"])
                )
            )
        }
    assert sent == {
        (template, phone)
        for template in ("contract_cancelled", "refund_completed")
        for phone in (ZHANG.phone, LI.phone)
    }

    # The unit sells again.
    again = await create(client, d.agent, order_body(d.units["202"], WANG))
    assert again.status_code == 201, again.text
    assert json.loads(again.text)["unit"]["room_no"] == "202"
