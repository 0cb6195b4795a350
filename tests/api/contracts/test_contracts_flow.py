"""The whole new-home flow over HTTP: create, issue (the deposit notice opens), scan, pay
the deposit, two buyers sign, seal, complete (waiting for filing), then the public checks
the contract and the building table shows the unit signed."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock, end_of_next_natural_day
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.outbox.models import OutboxMessage
from api.settings import Settings
from signing.evidence_verify import verify_bundle
from tests.api.contracts.helpers import (
    LI,
    SEAL_KEEPER,
    WANG,
    ZHANG,
    create,
    demo,
    face_verified,
    order_body,
    pay_notice,
    problem,
    scan,
    seal,
    sign,
)
from tests.api.identity.helpers import bearer, inbox
from tests.api.outbox.helpers import recipient


async def _unit_status(client: httpx.AsyncClient, building_id: str, room: str) -> str:
    table = (await client.get(f"/api/v1/public/buildings/{building_id}/units")).json()
    return next(u["status"] for u in table["units"] if u["room_no"] == room)


async def test_two_buyers_sign_the_developer_seals_and_the_public_can_check(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    settings: Settings,
    database: Database,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    building = d.world["building"]["id"]
    zhang = await face_verified(client, ZHANG)
    li = await face_verified(client, LI)
    wang = await face_verified(client, WANG)

    created = await create(client, d.agent, order_body(d.units["201"], ZHANG, LI))
    assert created.status_code == 201, created.text
    order = created.json()
    order_id = order["id"]
    assert order["status"] == "draft" and order["unit"]["room_no"] == "201"
    assert [p["id_number_masked"] for p in order["parties"]] == [
        ZHANG.id_number[:4] + "*" * 10 + ZHANG.id_number[-4:],
        LI.id_number[:4] + "*" * 10 + LI.id_number[-4:],
    ]
    assert ZHANG.id_number not in created.text and ZHANG.phone not in created.text
    assert await _unit_status(client, building, "201") == "signing"

    issued = await client.post(f"/api/v1/contracts/{order_id}/issue", headers=bearer(d.agent))
    assert issued.status_code == 200, issued.text
    issue = issued.json()
    assert issue["order"]["status"] == "awaiting_signatures"
    assert (
        issue["expires_at"].replace("Z", "+00:00")
        == end_of_next_natural_day(clock.now()).isoformat()
    )
    assert issue["scan_url"].endswith("/miniapp/#/scan/" + issue["scene"])
    png = await client.get(f"/api/v1/contracts/{order_id}/qr.png", headers=bearer(d.agent))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    svg = await client.get(f"/api/v1/contracts/{order_id}/qr.svg", headers=bearer(d.agent))
    assert svg.status_code == 200 and "<svg" in svg.text
    async with database.reader() as reader:
        invitations = await reader.scalars(
            select(OutboxMessage).where(OutboxMessage.template == "sign_invitation")
        )
        assert sorted(recipient(keys, m) for m in invitations) == sorted([ZHANG.phone, LI.phone])

    # A stranger scans: refused, and the refusal is in the timeline.
    assert problem(await scan(client, wang, issue["scene"])) == (403, "not_a_party")
    scanned = await scan(client, zhang, issue["scene"])
    assert scanned.status_code == 200, scanned.text
    reading = scanned.json()
    assert reading["role"] == "buyer"
    assert reading["document_hash"] == issue["order"]["document_hash"]
    parties = reading["document"]["terms"]["parties"]
    assert [p["role"] for p in parties] == ["buyer", "buyer", "seal"]
    assert parties[2]["credit_code"] == d.world["company"]["uscc"]

    # Seed 001: the deposit notice opened at issue; nobody signs before paid equals due.
    notices = await client.get(
        f"/api/v1/contracts/{order_id}/payment-notices", headers=bearer(zhang)
    )
    assert [(n["kind"], n["status"]) for n in notices.json()["items"]] == [("deposit", "unpaid")]
    early_sign = await client.post(
        f"/api/v1/contracts/{order_id}/signatures/challenge", headers=bearer(zhang)
    )
    assert problem(early_sign) == (409, "deposit_unpaid")
    await pay_notice(client, zhang, order_id, "deposit", amount_fen=10_000_00)
    partly = await client.post(
        f"/api/v1/contracts/{order_id}/signatures/challenge", headers=bearer(zhang)
    )
    assert problem(partly) == (409, "deposit_unpaid")  # paid must equal due, not approach it
    await pay_notice(client, zhang, order_id, "deposit")
    # Each payment is news to every buyer, naming the business number (网签业务宗号).
    async with database.reader() as reader:
        arrived = list(
            await reader.scalars(
                select(OutboxMessage).where(OutboxMessage.template == "deposit_arrived")
            )
        )
    assert sorted(recipient(keys, m) for m in arrived) == sorted([ZHANG.phone, LI.phone] * 2)
    params = json.loads(keys.pii.decrypt(arrived[0].params_encrypted, field="outbox.params"))
    assert issue["order"]["business_number"].startswith("YW2026")
    assert params["business_no"] == issue["order"]["business_number"]

    # The seal keeper cannot seal before every buyer has signed.
    early = await client.post(
        f"/api/v1/contracts/{order_id}/seal/challenge", headers=bearer(d.seal_keeper)
    )
    assert problem(early) == (409, "not_ready_for_seal")

    signed, used = await sign(client, zhang, order_id, ZHANG.phone)
    assert signed.status_code == 200, signed.text
    assert signed.json()["order"]["status"] == "awaiting_signatures"
    # The same code again, and a second signature, are refused.
    replay = await client.post(
        f"/api/v1/contracts/{order_id}/signatures", json=used, headers=bearer(zhang)
    )
    assert problem(replay) == (409, "already_signed")
    again = await client.post(
        f"/api/v1/contracts/{order_id}/signatures/challenge", headers=bearer(zhang)
    )
    assert problem(again) == (409, "already_signed")

    assert (await scan(client, li, issue["scene"])).status_code == 200
    signed, _ = await sign(client, li, order_id, LI.phone)
    assert signed.status_code == 200, signed.text
    assert signed.json()["order"]["status"] == "awaiting_seal"
    # Buyers cannot seal.
    assert problem(
        await client.post(f"/api/v1/contracts/{order_id}/seal/challenge", headers=bearer(li))
    ) == (403, "staff_only")

    sealed = await seal(client, d, order_id)
    assert sealed.status_code == 200, sealed.text
    done = sealed.json()
    number, password = done["contract_number"], done["password"]
    assert number.startswith("YS2026") and len(number) == 14
    assert len(password) == 8 and password.isdigit()
    # Sealed and numbered, the contract waits for a regulator's filing (review mode).
    assert done["order"]["status"] == "filing_pending"
    assert (
        done["order"]["filing_submitted_at"] is not None and done["order"]["filing_number"] is None
    )
    assert await _unit_status(client, building, "201") == "signed"

    # Each buyer may see the password once on asking; again only after a fresh SMS code
    # (tests/api/contracts/test_trust.py).
    once = await client.post(f"/api/v1/contracts/{order_id}/password", headers=bearer(zhang))
    assert once.status_code == 200 and once.headers["cache-control"] == "no-store"
    assert once.json() == {"contract_number": number, "password": password, "shown_before": False}
    twice = await client.post(f"/api/v1/contracts/{order_id}/password", headers=bearer(zhang))
    assert problem(twice) == (403, "password_code_required")
    other = await client.post(f"/api/v1/contracts/{order_id}/password", headers=bearer(li))
    assert other.json()["password"] == password
    stranger = await client.post(f"/api/v1/contracts/{order_id}/password", headers=bearer(wang))
    assert problem(stranger) == (403, "not_a_party")

    # Completion opens the payment notices into the supervised account; buyers see them.
    notices = await client.get(f"/api/v1/contracts/{order_id}/payment-notices", headers=bearer(li))
    assert notices.status_code == 200, notices.text
    due = {n["kind"]: (n["due_fen"], n["paid_fen"], n["status"]) for n in notices.json()["items"]}
    assert due == {
        "deposit": (50_000_00, 50_000_00, "paid"),
        "down_payment": (600_000_00, 0, "unpaid"),
    }

    # Both buyers get the seed 002 SMS (queued in the same transaction as the seal).
    async with database.reader() as reader:
        messages = list(
            await reader.scalars(
                select(OutboxMessage).where(OutboxMessage.template == "contract_signed")
            )
        )
    assert sorted(recipient(keys, m) for m in messages) == sorted([ZHANG.phone, LI.phone])
    assert all(m.dedupe_key.startswith(f"{order_id}:signed:") for m in messages)

    # The timeline, with actors masked, and what was sent about the contract.
    progress = (
        await client.get(f"/api/v1/contracts/{order_id}/events", headers=bearer(zhang))
    ).json()
    timeline = progress["events"]
    sent = [(n["title"], n["recipient"]) for n in progress["notifications"]]
    assert ("买卖合同签订", ZHANG.phone[:3] + "****" + ZHANG.phone[-4:]) in sent
    assert {n["title"] for n in progress["notifications"]} >= {"邀请签约", "买卖合同签订"}
    assert password not in str(progress)  # the log shows what was sent, never the secret
    types = [e["type"] for e in timeline]
    assert types[:3] == ["created", "issued", "scan_refused"]
    assert types.count("signed") == 2 and types[-6:] == [
        "sealed",
        "completed",
        "filing_submitted",
        "pdf_finished",  # the signed PDF, its hash and its QR code: after the seal's commit
        *["password_shown"] * 2,
    ]
    assert "awaiting_seal" in types and "scanned" in types
    assert all(ZHANG.name not in e["actor"] for e in timeline)

    # The citizens and the company see it in their lists; the document and the evidence.
    mine = (await client.get("/api/v1/contracts", headers=bearer(zhang))).json()
    assert [o["id"] for o in mine["items"]] == [order_id]
    company = (
        await client.get(
            "/api/v1/contracts", params={"status": "filing_pending"}, headers=bearer(d.agent)
        )
    ).json()
    assert company["total"] == 1
    assert (await client.get("/api/v1/contracts", headers=bearer(wang))).json()["total"] == 0
    document = await client.get(f"/api/v1/contracts/{order_id}/document", headers=bearer(li))
    assert document.json()["document_hash"] == reading["document_hash"]
    bundle = await client.get(f"/api/v1/contracts/{order_id}/evidence", headers=bearer(zhang))
    assert bundle.status_code == 200, bundle.text
    root = (settings.data_dir / "keystore" / "root.crt.pem").read_bytes()
    report = verify_bundle(bundle.json(), root)
    assert report.ok, report.to_text()
    assert len(bundle.json()["signatures"]) == 3

    # The public check: genuine with the password, nothing without it.
    checked = await client.get(
        "/api/v1/public/verify", params={"number": number, "password": password}
    )
    assert checked.status_code == 200
    answer = checked.json()
    assert answer["genuine"] is True and answer["status"] == "filing_pending"
    assert answer["unit"]["room_no"] == "201"
    assert {p["name"] for p in answer["parties"]} == {"张*", "李*"}
    assert [s["role"] for s in answer["signatures"]] == ["buyer", "buyer", "seal"]
    assert ZHANG.name not in checked.text
    wrong = "0" * 8 if password != "0" * 8 else "1" * 8
    for _ in range(5):
        refused = await client.get(
            "/api/v1/public/verify", params={"number": number, "password": wrong}
        )
        assert refused.json() == {"genuine": False, "contract_number": number}
    # The wrong ones back off; the right password is not locked out (review finding 7).
    right = await client.get(
        "/api/v1/public/verify", params={"number": number, "password": password}
    )
    assert right.json()["genuine"] is True
    checked_wrong = await client.get(
        "/api/v1/public/verify", params={"number": number, "password": wrong}
    )
    assert checked_wrong.json()["genuine"] is False
    limited = await client.get(
        "/api/v1/public/verify", params={"number": number, "password": wrong}
    )
    assert problem(limited) == (429, "rate_limited")
    clock.advance(timedelta(seconds=int(limited.headers["Retry-After"])))
    assert (
        await client.get("/api/v1/public/verify", params={"number": number, "password": password})
    ).json()["genuine"] is True

    # The seal keeper's SMS code went to the seal keeper, bound to the order.
    # Each purpose has its own verification-code template, which says what the code is for.
    assert (await inbox(client, SEAL_KEEPER.phone))[0]["template"] == "seal_code"
    assert "为网签合同盖章" in (await inbox(client, SEAL_KEEPER.phone))[0]["text"]
    assert (await inbox(client, ZHANG.phone))[0]["template"] == "sign_code"


async def test_every_number_series_fits_the_sms_number_variable(session: AsyncSession) -> None:
    # Contract, business and filing numbers go into SMS "other number" variables (letters
    # and digits, at most 20): from the first number of a year to the last the counter's
    # integer column can hold.
    from sqlalchemy import update

    from api.contracts.models import ContractCounter
    from api.contracts.queries import next_number
    from notifications.templates import VARIABLE_RULES

    rule = VARIABLE_RULES["number"]
    for prefix in ("YS", "XS", "CL", "YW", "BA"):
        series = f"{prefix}2026"
        first = await next_number(session, series)
        await session.execute(
            update(ContractCounter).where(ContractCounter.name == series).values(value=2**31 - 2)
        )
        last = await next_number(session, series)
        assert first == f"{series}00000001"
        assert last == f"{series}{2**31 - 1}"
        for number in (first, last):
            assert rule.pattern.fullmatch(number) and len(number) <= rule.max_length
    await session.rollback()
