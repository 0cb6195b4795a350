"""Issue 19, the API behind signing pages a buyer can trust: the separate consent to the
personal-information notice (kept with the person and in the signing evidence), the
contract password shown again only after a fresh SMS code (never kept or replayed by the
idempotency store), the scanned link's preview before logging in, the flat written as
people write it, the total price in capitals, and the receipt of a paid notice."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.idempotency import IdempotencyRecord
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.identity.consent import PI_NOTICE_VERSION
from api.outbox.models import OutboxMessage
from api.outbox.service import PARAMS_FIELD
from tests.api.contracts.helpers import (
    LI,
    SELLER,
    WANG,
    ZHANG,
    create_issued,
    demo,
    face_verified,
    pay_notice,
    problem,
    resale_contract,
    scan,
    signed_contract,
)
from tests.api.identity.helpers import agree_to_pi_notice, bearer, inbox, login_phone, wrong


async def test_consent_is_kept_with_the_person_and_in_the_signing_evidence(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await login_phone(client, ZHANG.phone)
    notice = await client.get("/api/v1/me/pi-notice", headers=bearer(zhang))
    assert notice.status_code == 200, notice.text
    assert notice.json()["version"] == PI_NOTICE_VERSION
    headings = [item["heading"] for item in notice.json()["items"]]
    assert headings[:3] == ["收集什么", "为什么收集", "保存多久"]
    me = (await client.get("/api/v1/me", headers=bearer(zhang))).json()
    assert me["pi_consent_at"] is None and me["pi_consent_version"] is None

    # A consent to a notice the person was not shown is refused.
    outdated = await client.post(
        "/api/v1/me/pi-consent", json={"version": "2020.1"}, headers=bearer(zhang)
    )
    assert problem(outdated) == (409, "pi_notice_outdated")
    assert outdated.json()["current_version"] == PI_NOTICE_VERSION
    # Staff have no such record; nobody without a login either.
    staff = await client.post(
        "/api/v1/me/pi-consent", json={"version": PI_NOTICE_VERSION}, headers=bearer(d.agent)
    )
    assert staff.status_code == 403, staff.text
    anonymous = await client.post("/api/v1/me/pi-consent", json={"version": PI_NOTICE_VERSION})
    assert anonymous.status_code == 401

    consented_at = clock.now()
    given = await client.post(
        "/api/v1/me/pi-consent", json={"version": PI_NOTICE_VERSION}, headers=bearer(zhang)
    )
    assert given.status_code == 200, given.text
    assert given.json()["pi_consent_version"] == PI_NOTICE_VERSION
    first = given.json()["pi_consent_at"]
    assert first.startswith(consented_at.strftime("%Y-%m-%dT%H:%M:%S"))
    clock.advance(timedelta(minutes=1))  # agreeing again keeps the first time
    again = await client.post(
        "/api/v1/me/pi-consent", json={"version": PI_NOTICE_VERSION}, headers=bearer(zhang)
    )
    assert again.json()["pi_consent_at"] == first

    # Signing: the timeline's "signed" event (hash-chained into the evidence bundle) names
    # the consent and its time; a signer who never consented is recorded as such.
    clock.advance(timedelta(minutes=2))  # SMS codes to one phone are spaced out
    contract = await signed_contract(client, d, "201", ZHANG, LI)
    bundle = await client.get(
        f"/api/v1/contracts/{contract.order_id}/evidence", headers=bearer(contract.tokens["张三"])
    )
    assert bundle.status_code == 200, bundle.text
    signed = [e["payload"] for e in bundle.json()["events"] if e["payload"]["type"] == "signed"]
    consents = {s["detail"]["party"]: s["detail"]["pi_consent_at"] for s in signed}
    # 张三 agreed above; 李四 agreed on the way to his face check (he could not start one
    # before): every signer's consent and its time are in the evidence.
    assert consents[0] == first and consents[1] is not None and consents[1] > first
    assert all(s["detail"]["pi_consent_version"] == PI_NOTICE_VERSION for s in signed)


async def test_without_consent_no_id_number_or_face_is_collected(
    mock_client: httpx.AsyncClient,
) -> None:
    client = mock_client
    token = await login_phone(client, ZHANG.phone)
    person = {"name": ZHANG.name, "id_number": ZHANG.id_number}
    named = await client.post("/api/v1/me/real-name", json=person, headers=bearer(token))
    assert problem(named) == (409, "pi_consent_required")
    assert named.json()["current_version"] == PI_NOTICE_VERSION
    face = await client.post("/api/v1/me/face-sessions", headers=bearer(token))
    assert problem(face) == (409, "pi_consent_required")
    me = (await client.get("/api/v1/me", headers=bearer(token))).json()
    assert me["identity_level"] == "none" and me["pi_consent_at"] is None  # nothing kept

    await agree_to_pi_notice(client, token)
    named = await client.post("/api/v1/me/real-name", json=person, headers=bearer(token))
    assert named.status_code == 200, named.text


async def test_the_password_is_shown_again_only_after_a_fresh_code_and_never_replayed(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    contract = await signed_contract(client, d, "201", ZHANG)
    zhang = contract.tokens["张三"]
    path = f"/api/v1/contracts/{contract.order_id}/password"

    first = await client.post(path, headers=bearer(zhang))
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    assert first.json()["password"] == contract.password and not first.json()["shown_before"]
    without_code = await client.post(path, headers=bearer(zhang))
    assert problem(without_code) == (403, "password_code_required")
    assert contract.password not in without_code.text

    challenge = await client.post(f"{path}/challenge", headers=bearer(zhang))
    assert challenge.status_code == 200, challenge.text
    assert challenge.json()["phone_masked"] == ZHANG.phone[:3] + "****" + ZHANG.phone[-4:]
    message = (await inbox(client, ZHANG.phone))[0]
    assert message["template"] == "password_code" and "查看网签合同的合同密码" in message["text"]
    code = message["params"]["code"]
    body = {"challenge_id": challenge.json()["challenge_id"], "code": wrong(code)}
    refused = await client.post(path, json=body, headers=bearer(zhang))
    assert problem(refused) == (400, "otp_invalid")
    # The right code shows it again; sent with an Idempotency-Key, the answer is neither
    # stored nor replayed (the retry runs again and the used code is refused).
    body = {"challenge_id": challenge.json()["challenge_id"], "code": code}
    keyed = {**bearer(zhang), "Idempotency-Key": "password-again-1"}
    shown = await client.post(path, json=body, headers=keyed)
    assert shown.status_code == 200, shown.text
    assert shown.json() == {
        "contract_number": contract.number,
        "password": contract.password,
        "shown_before": True,
    }
    assert shown.headers["cache-control"] == "no-store"
    async with database.reader() as reader:
        stored = [
            bytes(b or b"") for b in await reader.scalars(select(IdempotencyRecord.response_body))
        ]
    assert not any(contract.password.encode() in b for b in stored)
    replay = await client.post(path, json=body, headers=keyed)
    assert "idempotent-replayed" not in replay.headers
    assert replay.status_code != 200 and contract.password not in replay.text

    # Someone else's contract: not theirs to see; a code bound to one person's showing
    # is no good for another's.
    wang = await face_verified(client, WANG)
    assert problem(await client.post(path, headers=bearer(wang))) == (403, "not_a_party")
    assert problem(await client.post(f"{path}/challenge", headers=bearer(wang))) == (
        403,
        "not_a_party",
    )
    events = (
        await client.get(f"/api/v1/contracts/{contract.order_id}/events", headers=bearer(zhang))
    ).json()["events"]
    shown_events = [e["detail"] for e in events if e["type"] == "password_shown"]
    assert shown_events == [{"again": False}, {"again": True}]


async def test_a_scanned_link_says_what_it_is_before_logging_in(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    issued = await create_issued(client, d, "603", ZHANG, pay=False)
    preview = await client.get(f"/api/v1/public/scenes/{issued['scene']}")
    assert preview.status_code == 200, preview.text
    answer = preview.json()
    assert answer["state"] == "open" and answer["message"] is None
    assert answer["kind"] == "contract" and answer["title"].startswith("商品房买卖合同（预售）")
    assert answer["unit"]["label"] == "明湖花园1栋2单元603室"
    assert answer["expires_at"] is not None
    # It names nobody and no price.
    assert ZHANG.name not in preview.text and "2000000" not in preview.text

    unknown = await client.get("/api/v1/public/scenes/NoSuchScene123")
    assert problem(unknown) == (404, "scene_unknown")
    malformed = await client.get("/api/v1/public/scenes/bad-scene!")
    assert problem(malformed) == (404, "scene_unknown")

    other = await create_issued(client, d, "604", LI, pay=False)
    voided = await client.post(
        f"/api/v1/contracts/{other['order']['id']}/void",
        json={"reason": "客户改选其他房源"},
        headers=bearer(d.agent),
    )
    assert voided.status_code == 200, voided.text
    withdrawn = (await client.get(f"/api/v1/public/scenes/{other['scene']}")).json()
    assert (withdrawn["state"], withdrawn["message"]) == ("voided", "该合同订单已作废。")
    assert withdrawn["unit"]["label"] == "明湖花园1栋2单元604室"

    clock.advance(timedelta(days=3))  # past the end of the next natural day
    ended = (await client.get(f"/api/v1/public/scenes/{issued['scene']}")).json()
    assert ended["state"] == "expired" and "过期" in ended["message"]
    assert ended["expires_at"] is None


async def test_the_flat_is_written_with_its_unit_and_the_price_in_capitals(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    issued = await create_issued(client, d, "603", ZHANG)
    order = issued["order"]
    assert order["unit"]["label"] == "明湖花园1栋2单元603室" and order["unit"]["unit"] == "2"
    assert order["price_words"] == "人民币贰佰万元整（¥2,000,000.00）"
    scanned = await scan(client, zhang, issued["scene"])
    assert scanned.status_code == 200, scanned.text
    text = scanned.json()["document"]["text"]
    clauses = [c for chapter in text["chapters"] for c in chapter["clauses"]]
    assert any("为明湖花园1栋2单元603室" in c for c in clauses)
    mine = (await client.get("/api/v1/me/signatures", headers=bearer(zhang))).json()
    assert mine["items"][0]["unit"]["label"] == "明湖花园1栋2单元603室"
    # The invitation SMS: "明湖花园，1栋2单元，603室" (the template keeps its commas).
    async with database.reader() as reader:
        invitation = await reader.scalar(
            select(OutboxMessage).where(OutboxMessage.template == "sign_invitation")
        )
    assert invitation is not None and invitation.params_encrypted is not None
    params = json.loads(keys.pii.decrypt(invitation.params_encrypted, field=PARAMS_FIELD))
    assert (params["estate"], params["building"], params["room"]) == ("明湖花园", "1栋2单元", "603")


async def test_a_paid_notice_shows_its_payments_and_gives_a_receipt(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    issued = await create_issued(client, d, "201", ZHANG, pay=False)
    order_id = issued["order"]["id"]
    assert (await scan(client, zhang, issued["scene"])).status_code == 200
    listed = f"/api/v1/contracts/{order_id}/payment-notices"
    deposit = next(
        n
        for n in (await client.get(listed, headers=bearer(zhang))).json()["items"]
        if n["kind"] == "deposit"
    )
    assert deposit["payments"] == [] and deposit["paid_at"] is None
    assert deposit["receipt_pdf"] is None
    receipt = f"/api/v1/payment-notices/{deposit['id']}/receipt.pdf"
    assert problem(await client.get(receipt, headers=bearer(zhang))) == (409, "receipt_not_ready")

    await pay_notice(client, zhang, order_id, "deposit", amount_fen=20_000_00)
    clock.advance(timedelta(minutes=5))
    partial = next(
        n
        for n in (await client.get(listed, headers=bearer(zhang))).json()["items"]
        if n["kind"] == "deposit"
    )
    assert [p["amount_fen"] for p in partial["payments"]] == [20_000_00]
    assert partial["paid_at"] is None
    assert problem(await client.get(receipt, headers=bearer(zhang)))[1] == "receipt_not_ready"

    paid_at = clock.now()
    await pay_notice(client, zhang, order_id, "deposit")
    paid = next(
        n
        for n in (await client.get(listed, headers=bearer(zhang))).json()["items"]
        if n["kind"] == "deposit"
    )
    assert paid["status"] == "paid" and [p["amount_fen"] for p in paid["payments"]] == [
        20_000_00,
        30_000_00,
    ]
    assert paid["paid_at"].startswith(paid_at.strftime("%Y-%m-%dT%H:%M"))
    assert all(p["bank_transaction_id"].startswith("BK") for p in paid["payments"])
    assert paid["receipt_pdf"] == receipt

    pdf = await client.get(receipt, headers=bearer(zhang))
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert "filename*=UTF-8''" in pdf.headers["content-disposition"]
    # Nobody else's receipt.
    wang = await face_verified(client, WANG)
    assert problem(await client.get(receipt, headers=bearer(wang))) == (404, "not_found")
    assert (await client.get(receipt)).status_code == 401


async def test_the_face_check_leads_back_to_the_mini_program(
    mock_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """The provider's return page leads back to the demo's H5 face page (which asks for
    the result by itself); without the demo's pages it only says to go back."""
    demo_page = await mock_client.get("/api/v1/auth/face-return")
    assert demo_page.status_code == 200
    assert 'location.replace("/miniapp/#/face")' in demo_page.text
    plain = await client.get("/api/v1/auth/face-return")
    assert plain.status_code == 200 and "/miniapp/" not in plain.text
    assert "请返回小程序或应用查看结果" in plain.text


async def test_the_seller_who_submits_saw_the_password_once_already(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    """The submit answer shows the resale's password to the seller: asking again needs a
    fresh SMS code; the buyer's first look needs none."""
    client = mock_client
    d = await demo(client, session, keys, clock)
    contract = await resale_contract(client, d, ZHANG)
    path = f"/api/v1/contracts/{contract.order_id}/password"
    seller = await client.post(path, headers=bearer(contract.tokens[SELLER.name]))
    assert problem(seller) == (403, "password_code_required")
    buyer = await client.post(path, headers=bearer(contract.tokens[ZHANG.name]))
    assert buyer.status_code == 200 and buyer.json()["password"] == contract.password
