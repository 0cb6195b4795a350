"""The resale journey (存量房网签, seed 004) over HTTP: the owner checks the title, fills the
contract and shows its QR; the buyer scans, both pass a fresh face check and sign; the
seller submits; the buyer pays into the city's resale account; the regulator records the
transfer and the money goes to the seller through the ledger. Then every refusal."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.models import ContractDocument, ContractOrder, ContractParty
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import DEMO_RESALE_ACCOUNT_NUMBER, PEOPLE, DemoPerson
from api.escrow.reconcile import reconcile
from api.outbox.models import OutboxMessage
from api.register.models import RestrictionKind
from api.register.restrictions import add_restriction
from api.settings import Settings
from signing.evidence_verify import verify_bundle
from signing.gb_codes import resident_id_check_char
from signing.pdf import verify_pdf_sync
from signing.verify import main as verify_main
from tests.api.contracts.helpers import (
    SELLER,
    ZHANG,
    check_title,
    demo,
    face_verified,
    latest_code,
    pay_notice,
    problem,
    prove_identity,
    resale_body,
    resale_issued,
    scan,
    sign,
)
from tests.api.identity.helpers import bearer, login_phone
from tests.api.outbox.helpers import recipient

REGULATOR = next(p for p in PEOPLE if p.role == "regulator")


async def _sent(database: Database, template: str) -> list[OutboxMessage]:
    async with database.reader() as reader:
        return list(
            await reader.scalars(select(OutboxMessage).where(OutboxMessage.template == template))
        )


async def test_the_seller_sells_the_buyer_pays_and_the_money_reaches_the_seller(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    title = d.world["resale_title"]
    seller = await face_verified(client, SELLER)

    # 房源验证: a wrong check code first, counted; then the right one.
    wrong = await check_title(client, seller, title["certificate_no"], "000000")
    assert problem(wrong) == (422, "title_check_failed")
    assert wrong.json()["remaining_tries"] == 4
    checked = await check_title(client, seller, title["certificate_no"], title["check_code"])
    assert checked.status_code == 200, checked.text
    facts = checked.json()
    assert facts["title_id"] == title["id"] and facts["room_no"] == "501"
    assert facts["owners"] == [
        {
            "name": "王*",
            "id_number_masked": facts["owners"][0]["id_number_masked"],
            "share": "",
            "me": True,
        }
    ]
    assert SELLER.id_number not in checked.text
    assert facts["mortgaged"] is False and facts["live_order_id"] is None

    # The contract: the owner is its seller, bound already; the buyer is named.
    created = await client.post(
        "/api/v1/resale/orders", json=resale_body(title["id"], ZHANG), headers=bearer(seller)
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["kind"] == "resale" and order["status"] == "draft"
    assert [(p["role"], p["name"], p["bound"]) for p in order["parties"]] == [
        ("seller", SELLER.name, True),
        ("buyer", ZHANG.name, False),
    ]
    assert order["resale"]["certificate_no"] == title["certificate_no"]
    assert order["resale"]["funds_supervised"] is True
    assert order["resale"]["seller_account"]["account_number"].endswith("5678")
    assert "6217000012345678" not in created.text
    # Deleted at the end of the next natural day after its creation (Asia/Shanghai).
    assert order["expires_at"] == "2026-11-24T16:00:00Z"
    issued = await client.post(f"/api/v1/contracts/{order['id']}/issue", headers=bearer(seller))
    assert issued.status_code == 200, issued.text
    assert issued.json()["expires_at"] == "2026-11-24T16:00:00Z"
    qr = await client.get(f"/api/v1/contracts/{order['id']}/qr.png", headers=bearer(seller))
    assert qr.status_code == 200 and qr.content.startswith(b"\x89PNG")

    # The buyer scans, reads what the title carries, and signs; so does the seller.
    zhang = await face_verified(client, ZHANG)
    scanned = await scan(client, zhang, issued.json()["scene"])
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["role"] == "buyer"
    document = scanned.json()["document"]
    resale = document["terms"]["resale"]
    assert resale["mortgaged"] is False and resale["co_ownership"] == "sole"
    assert resale["supervised_account"]["account_number"] == DEMO_RESALE_ACCOUNT_NUMBER
    assert "developer" not in document["terms"]
    tasks = (await client.get("/api/v1/me/signatures", headers=bearer(zhang))).json()["items"]
    assert [(t["kind"], t["order_id"], t["role"]) for t in tasks] == [
        ("contract", order["id"], "buyer")
    ]
    signed, _ = await sign(client, zhang, order["id"], ZHANG.phone)
    assert signed.status_code == 200, signed.text
    assert (await client.get("/api/v1/me/signatures", headers=bearer(zhang))).json()["items"] == []
    early = await client.post(f"/api/v1/contracts/{order['id']}/submit", headers=bearer(seller))
    assert problem(early) == (409, "signatures_missing")
    signed, _ = await sign(client, seller, order["id"], SELLER.phone)
    assert signed.status_code == 200, signed.text
    assert signed.json()["order"]["status"] == "awaiting_submit"

    # Only the seller submits: 已签约, with its number and password.
    by_buyer = await client.post(f"/api/v1/contracts/{order['id']}/submit", headers=bearer(zhang))
    assert problem(by_buyer) == (403, "not_order_creator")
    submitted = await client.post(f"/api/v1/contracts/{order['id']}/submit", headers=bearer(seller))
    assert submitted.status_code == 200, submitted.text
    assert submitted.headers["cache-control"] == "no-store"
    number, password = submitted.json()["contract_number"], submitted.json()["password"]
    assert number.startswith("CL2026") and len(password) == 8
    assert submitted.json()["order"]["status"] == "signed"
    sms = await _sent(database, "resale_contract_signed")
    assert sorted(recipient(keys, m) for m in sms) == sorted([ZHANG.phone, SELLER.phone])
    again = await client.post(f"/api/v1/contracts/{order['id']}/submit", headers=bearer(seller))
    assert problem(again) == (409, "already_submitted")
    # The signed PDF: the seller's and the buyer's revisions, the platform's stamp, no seal.
    pdf = await client.get(f"/api/v1/contracts/{order['id']}/pdf", headers=bearer(zhang))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    checked_pdf = await client.post(
        "/api/v1/public/verify-pdf",
        content=pdf.content,
        headers={"Content-Type": "application/pdf"},
    )
    assert checked_pdf.json()["ours"] and checked_pdf.json()["unchanged"]
    assert checked_pdf.json()["contract_number"] == number
    root_cert = x509.load_pem_x509_certificate(
        (settings.data_dir / "keystore" / "root.crt.pem").read_bytes()
    )
    report = verify_pdf_sync(pdf.content, root_cert, now=clock.now() + timedelta(minutes=1))
    assert report.ok, [c for c in report.checks if not c.ok]
    assert [s.field for s in report.signatures][:3] == ["buyer-1", "seller-1", "platform"]
    assert report.signatures[-1].kind == "timestamp" and report.signatures[-1].whole_file

    # The buyer pays into the city's resale account; the seller sees the notices too.
    for kind in ("deposit", "down_payment"):
        await pay_notice(client, zhang, order["id"], kind)
    arrived = await _sent(database, "resale_funds_arrived")
    assert {recipient(keys, m) for m in arrived} == {ZHANG.phone, SELLER.phone}
    seen = await client.get(
        f"/api/v1/contracts/{order['id']}/payment-notices", headers=bearer(seller)
    )
    assert seen.status_code == 200
    assert {n["status"] for n in seen.json()["items"]} == {"paid"}

    # The regulator records the transfer: the money is instructed to the seller.
    regulator = bearer(await login_phone(client, REGULATOR.phone))
    transferred = await client.post(
        f"/api/v1/contracts/{order['id']}/transfer-registered", headers=regulator
    )
    assert transferred.status_code == 200, transferred.text
    assert transferred.json()["status"] == "transferred"
    accounts = (await client.get("/api/v1/escrow/accounts", headers=regulator)).json()["items"]
    city = next(a for a in accounts if a["scope"] == "resale")
    statement = (
        await client.get(f"/api/v1/escrow/accounts/{city['id']}/statement", headers=regulator)
    ).json()
    payouts = [i for i in statement["instructions"] if i["kind"] == "payout"]
    assert [(i["amount_fen"], i["status"]) for i in payouts] == [(540_000_00, "approved")]
    assert statement["balances"]["payouts_pending_fen"] == 540_000_00
    done = await client.post(
        f"/mock/bank/instructions/{payouts[0]['id']}/execute",
        json={
            "kind": "payout",
            "account_number": DEMO_RESALE_ACCOUNT_NUMBER,
            "amount_fen": 540_000_00,
        },
    )
    assert done.json()["status"] == 200, done.text
    balances = (
        await client.get(f"/api/v1/escrow/accounts/{city['id']}/statement", headers=regulator)
    ).json()["balances"]
    assert balances["bank_balance_fen"] == 0 and balances["payouts_pending_fen"] == 0
    assert {recipient(keys, m) for m in await _sent(database, "seller_paid")} == {
        ZHANG.phone,
        SELLER.phone,
    }
    async with database.reader() as reader:
        assert await reconcile(reader) == []
    twice = await client.post(
        f"/api/v1/contracts/{order['id']}/transfer-registered", headers=regulator
    )
    assert problem(twice) == (409, "contract_not_transferable")

    # Anyone with number and password sees a genuine contract naming both, masked.
    verified = await client.get(
        "/api/v1/public/verify", params={"number": number, "password": password}
    )
    assert verified.json()["genuine"] is True
    assert "company" not in verified.json()  # no developer: the sellers are parties
    assert sorted(p["role"] for p in verified.json()["parties"]) == ["buyer", "seller"]

    # The evidence verifies offline and names the seller and the buyer.
    bundle = await client.get(f"/api/v1/contracts/{order['id']}/evidence", headers=bearer(zhang))
    root = (settings.data_dir / "keystore" / "root.crt.pem").read_bytes()
    report = verify_bundle(bundle.json(), root)
    assert report.ok, report.to_text()
    text = report.to_text()
    assert f"(seller): by {SELLER.name}, a party" in text
    assert f"(buyer): by {ZHANG.name}, a party" in text
    assert "all 2 parties signed" in text
    # The same bundle through the command a court clerk runs (wangqian verify).
    path = tmp_path / "evidence.json"
    path.write_text(bundle.text, encoding="utf-8")
    root_path = settings.data_dir / "keystore" / "root.crt.pem"
    assert verify_main([str(path), "--root", str(root_path)]) == 0
    assert "VALID" in capsys.readouterr().out


async def test_only_an_owner_with_the_right_code_and_a_free_title_may_sell(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    title = d.world["resale_title"]
    number, code = title["certificate_no"], title["check_code"]

    # Not logged in, not face verified, not an owner.
    assert (
        await client.post(
            "/api/v1/resale/title-checks", json={"certificate_no": number, "check_code": code}
        )
    ).status_code == 401
    unverified = await login_phone(client, SELLER.phone)
    assert problem(await check_title(client, unverified, number, code)) == (
        403,
        "face_verification_required",
    )
    zhang = await face_verified(client, ZHANG)
    assert problem(await check_title(client, zhang, number, code)) == (403, "title_not_owner")
    # An unknown number answers like a wrong code: nobody learns which titles exist.
    assert problem(await check_title(client, zhang, "粤(2020)示范市不动产权第9999999号", code)) == (
        422,
        "title_check_failed",
    )

    # Five wrong codes a day lock the title, the right code too, until midnight.
    await prove_identity(client, unverified, SELLER)
    seller = unverified
    for left in (4, 3, 2, 1, 0):
        wrong = await check_title(client, seller, number, "ZZZZZZ")
        assert problem(wrong) == (422, "title_check_failed")
        assert wrong.json()["remaining_tries"] == left
    locked = await check_title(client, seller, number, code)
    assert problem(locked) == (429, "title_check_locked")
    assert int(locked.headers["retry-after"]) > 0
    clock.advance(timedelta(days=1))
    seller = await face_verified(client, SELLER)
    assert (await check_title(client, seller, number, code)).status_code == 200

    # Filling the contract needs a check in the last half hour.
    clock.advance(timedelta(minutes=31))
    seller = await login_phone(client, SELLER.phone)
    stale = await client.post(
        "/api/v1/resale/orders", json=resale_body(title["id"], ZHANG), headers=bearer(seller)
    )
    assert problem(stale) == (409, "title_check_required")

    # A seized title is refused with the seed's wording, at the check and after it.
    assert (await check_title(client, seller, number, code)).status_code == 200
    await add_restriction(
        session,
        unit_id=uuid.UUID(title["unit_id"]),
        kind=RestrictionKind.judicial_seizure,
        source="示范市人民法院",
        starts_on=clock.now().date(),
        now=clock.now(),
    )
    await session.commit()
    seized = await check_title(client, seller, number, code)
    assert problem(seized) == (409, "title_restricted")
    assert seized.json()["detail"] == "该房屋已司法查封或行政限制。"
    refused = await client.post(
        "/api/v1/resale/orders", json=resale_body(title["id"], ZHANG), headers=bearer(seller)
    )
    assert problem(refused) == (409, "title_restricted")


async def test_what_the_seller_fills_in_is_checked(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    title = d.world["resale_title"]
    seller = await face_verified(client, SELLER)
    assert (
        await check_title(client, seller, title["certificate_no"], title["check_code"])
    ).status_code == 200
    li = next(p for p in PEOPLE if p.name == "李四")

    async def refused(**overrides: Any) -> tuple[int, str]:
        body = resale_body(title["id"], ZHANG, **overrides)
        answer = await client.post("/api/v1/resale/orders", json=body, headers=bearer(seller))
        return problem(answer)

    two = [{"name": p.name, "id_number": p.id_number, "phone": p.phone} for p in (ZHANG, li)]
    assert await refused(buyers=two) == (422, "co_ownership_required")
    assert await refused(buyers=two, co_ownership="by_share") == (422, "share_required")
    assert await refused(
        buyers=[{**two[0], "share": "1/2"}, {**two[1], "share": "1/3"}], co_ownership="by_share"
    ) == (422, "shares_invalid")
    minor_id = "110105201501010" + "01"
    minor_id += resident_id_check_char(minor_id)
    assert await refused(
        buyers=[{"name": "小明", "id_number": minor_id, "phone": "13900000009"}]
    ) == (403, "party_minor")
    me = {"name": SELLER.name, "id_number": SELLER.id_number, "phone": SELLER.phone}
    assert await refused(buyers=[me]) == (422, "buyer_is_seller")
    assert await refused(seller_account=None) == (422, "seller_account_required")
    assert await refused(seller_phones=["", "13900000008"]) == (422, "seller_phones_invalid")
    assert await refused(deposit_fen=1_000_000_00, down_payment_fen=900_000_00) == (
        422,
        "amounts_invalid",
    )
    assert await refused(delivery_date="2020-01-01") == (422, "delivery_date_invalid")
    assert await refused(taxes_borne_by="nobody") == (422, "invalid_body")
    # Without supervision no account is asked for; joint owners give no shares.
    fine = await client.post(
        "/api/v1/resale/orders",
        json=resale_body(
            title["id"],
            ZHANG,
            li,
            co_ownership="joint",
            funds_supervised=False,
            seller_account=None,
        ),
        headers=bearer(seller),
    )
    assert fine.status_code == 201, fine.text
    assert fine.json()["resale"]["co_ownership_label"] == "共同共有"
    assert fine.json()["resale"]["supervised_account"] is None
    # One live order per title: a second one is refused while the first lives.
    assert await refused() == (409, "title_unavailable")
    # Only the seller who made it issues or voids it.
    zhang = await face_verified(client, ZHANG)
    order_id = fine.json()["id"]
    assert problem(
        await client.post(f"/api/v1/contracts/{order_id}/issue", headers=bearer(zhang))
    ) == (403, "not_order_creator")
    assert problem(
        await client.post(f"/api/v1/contracts/{order_id}/issue", headers=bearer(d.agent))
    ) == (403, "not_order_creator")
    voided = await client.post(
        f"/api/v1/contracts/{order_id}/void", json={"reason": "改价重签"}, headers=bearer(seller)
    )
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    again = await client.post(
        "/api/v1/resale/orders", json=resale_body(title["id"], ZHANG), headers=bearer(seller)
    )
    assert again.status_code == 201, again.text


async def test_a_party_signs_only_as_themselves_with_a_fresh_face_check(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    seller = await face_verified(client, SELLER)
    # The seller typed the buyer's number under another name (张叁 for 张三).
    typo = DemoPerson("buyer", "张叁", ZHANG.phone, ZHANG.id_number)
    issued = await resale_issued(client, d, seller, typo)
    zhang = await face_verified(client, ZHANG)
    mismatch = await scan(client, zhang, issued["scene"])
    assert problem(mismatch) == (403, "name_mismatch")
    assert (await client.get("/api/v1/me/signatures", headers=bearer(zhang))).json()["items"] == []
    events = (
        await client.get(
            f"/api/v1/contracts/{issued['order']['id']}/events", headers=bearer(seller)
        )
    ).json()["events"]
    assert events[-1]["type"] == "scan_refused"
    assert events[-1]["detail"] == {"reason": "name_mismatch"}
    voided = await client.post(
        f"/api/v1/contracts/{issued['order']['id']}/void",
        json={"reason": "买受人姓名有误"},
        headers=bearer(seller),
    )
    assert voided.status_code == 200

    # A face check older than 10 minutes does not sign; a new one does.
    issued = await resale_issued(client, d, seller, ZHANG)
    order_id = issued["order"]["id"]
    assert (await scan(client, zhang, issued["scene"])).status_code == 200
    clock.advance(timedelta(minutes=11))
    zhang = await login_phone(client, ZHANG.phone)
    stale = await client.post(
        f"/api/v1/contracts/{order_id}/signatures/challenge", headers=bearer(zhang)
    )
    assert problem(stale) == (403, "face_check_stale")
    assert stale.json()["max_age_minutes"] == 10
    await prove_identity(client, zhang, ZHANG)
    challenge = await client.post(
        f"/api/v1/contracts/{order_id}/signatures/challenge", headers=bearer(zhang)
    )
    assert challenge.status_code == 200
    # The face check must still be fresh when the code comes back.
    clock.advance(timedelta(minutes=11))
    late = await client.post(
        f"/api/v1/contracts/{order_id}/signatures",
        json={
            "challenge_id": challenge.json()["challenge_id"],
            "code": await latest_code(client, ZHANG.phone),
        },
        headers=bearer(await login_phone(client, ZHANG.phone)),
    )
    assert problem(late) == (403, "face_check_stale")


async def test_an_unsigned_order_is_deleted_after_the_next_natural_day_and_its_people_purged(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    seller = await face_verified(client, SELLER)
    issued = await resale_issued(client, d, seller, ZHANG)
    order_id = issued["order"]["id"]
    zhang = await face_verified(client, ZHANG)
    assert (await scan(client, zhang, issued["scene"])).status_code == 200
    signed, _ = await sign(client, zhang, order_id, ZHANG.phone)
    assert signed.status_code == 200

    # 2026-11-23 10:00 in Shanghai: it lives through the 24th, and ends at midnight.
    clock.advance(timedelta(hours=37, minutes=59))
    seller = await login_phone(client, SELLER.phone)
    alive = await client.get(f"/api/v1/contracts/{order_id}", headers=bearer(seller))
    assert alive.json()["status"] == "awaiting_signatures"
    clock.advance(timedelta(minutes=2))
    zhang = await face_verified(client, ZHANG)
    expired = await scan(client, zhang, issued["scene"])
    assert problem(expired) == (410, "qr_expired")

    async with database.reader() as reader:
        order = await reader.get(ContractOrder, uuid.UUID(order_id))
        assert order is not None and order.status.value == "expired"
        assert order.personal_data_purged_at is not None
        assert order.document_json is None and order.seller_account_encrypted is None
        # The PDF named them too (its revision 0 and Zhang's signature).
        pdf = select(ContractDocument).where(ContractDocument.order_id == uuid.UUID(order_id))
        assert await reader.scalar(pdf) is None
        parties = list(
            await reader.scalars(
                select(ContractParty)
                .where(ContractParty.order_id == uuid.UUID(order_id))
                .order_by(ContractParty.position)
            )
        )
        assert [p.name for p in parties] == ["王*", "张*"]
        assert {(p.phone_encrypted, p.phone_masked) for p in parties} == {("", "")}
        assert {p.citizen_id for p in parties} == {None}
        assert all(p.id_number_encrypted == "" for p in parties)
        assert all(p.id_number_masked.count("*") >= 8 for p in parties)
        terms = json.loads(order.terms_json)
        assert [p["name"] for p in terms["parties"]] == ["王*", "张*"]
        assert ZHANG.name not in order.terms_json and SELLER.name not in order.terms_json
    # The timeline stays for the regulator (masked), and the title is free again.
    regulator = bearer(await login_phone(client, REGULATOR.phone))
    timeline = await client.get(f"/api/v1/contracts/{order_id}/events", headers=regulator)
    types = [e["type"] for e in timeline.json()["events"]]
    assert types[-3:] == ["expired", "personal_data_purged", "scan_refused"]
    assert ZHANG.name not in timeline.text and SELLER.name not in timeline.text
    gone = await client.get(f"/api/v1/contracts/{order_id}", headers=bearer(zhang))
    assert problem(gone) == (403, "not_a_party")
    again = await resale_issued(client, d, seller, ZHANG)
    assert again["order"]["id"] != order_id


async def test_a_mortgaged_title_may_be_sold_and_the_buyer_reads_so_before_signing(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    title = d.world["resale_title"]
    await add_restriction(
        session,
        unit_id=uuid.UUID(title["unit_id"]),
        kind=RestrictionKind.mortgage,
        source="示范银行",
        starts_on=clock.now().date(),
        now=clock.now(),
    )
    await session.commit()
    seller = await face_verified(client, SELLER)
    checked = await check_title(client, seller, title["certificate_no"], title["check_code"])
    assert checked.status_code == 200
    assert checked.json()["mortgaged"] is True and checked.json()["restrictions"] == ["mortgage"]
    issued = await resale_issued(client, d, seller, ZHANG)
    assert issued["order"]["resale"]["mortgaged"] is True
    zhang = await face_verified(client, ZHANG)
    scanned = await scan(client, zhang, issued["scene"])
    assert scanned.json()["document"]["terms"]["resale"]["mortgaged"] is True
    assert scanned.json()["order"]["resale"]["mortgaged"] is True
