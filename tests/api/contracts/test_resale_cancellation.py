"""存量房合同注销线上 (seed 004) over HTTP: after 已签约 either party starts it with a
reason; every party scans the cancellation's QR, passes a fresh face check and signs the
termination; the party who started it submits; the contract is 已注销, the title free, the
supervised money back to the buyer through the ledger, and everyone told. Plus the race of
two co-owners creating orders for one title at once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.models import LIVE_STATUSES, ContractOrder
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.demo import DEMO_RESALE_ACCOUNT_NUMBER, PEOPLE
from api.escrow.reconcile import reconcile
from api.outbox.models import OutboxMessage
from api.register import service as register
from api.settings import Settings
from signing.evidence_verify import verify_bundle
from tests.api.contracts.helpers import (
    LI,
    SELLER,
    ZHANG,
    check_title,
    demo,
    face_verified,
    latest_code,
    pay_notice,
    problem,
    resale_body,
    resale_contract,
    scan,
)
from tests.api.identity.helpers import bearer, login_phone
from tests.api.outbox.helpers import recipient
from tests.api.world import make_world

REGULATOR = next(p for p in PEOPLE if p.role == "regulator")


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


async def test_both_parties_sign_the_cancellation_and_its_starter_submits_it(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
    settings: Settings,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    contract = await resale_contract(client, d, ZHANG)
    order_id = contract.order_id
    zhang, wang = contract.tokens[ZHANG.name], contract.tokens[SELLER.name]
    await pay_notice(client, zhang, order_id, "deposit")

    # Started, then withdrawn before anyone signed: the contract is as it was.
    path = f"/api/v1/contracts/{order_id}/cancellation"
    first = await client.post(path, json={"reason": "买方贷款未获批"}, headers=bearer(zhang))
    assert first.status_code == 201, first.text
    assert [s["role"] for s in first.json()["signers"]] == ["seller", "buyer"]
    withdrawn = await client.post(
        f"/api/v1/cancellations/{first.json()['id']}/withdraw", headers=bearer(zhang)
    )
    assert withdrawn.json()["status"] == "withdrawn"
    assert (await client.get(f"/api/v1/contracts/{order_id}", headers=bearer(zhang))).json()[
        "status"
    ] == "signed"

    # Either party starts one; here the seller, with a reason.
    assert problem(await client.post(path, json={"reason": " "}, headers=bearer(wang))) == (
        422,
        "reason_required",
    )
    started = await client.post(path, json={"reason": "双方协商解除"}, headers=bearer(wang))
    assert started.status_code == 201, started.text
    cancellation = started.json()
    cid = cancellation["id"]
    assert cancellation["started_by_me"] is True
    seen_by_buyer = await client.get(f"/api/v1/cancellations/{cid}", headers=bearer(zhang))
    assert seen_by_buyer.json()["started_by_me"] is False
    assert cancellation["scene"] and cancellation["scan_url"].endswith(cancellation["scene"])
    invited = await _templates(database, keys, "resale_cancellation_invitation")
    assert invited == {ZHANG.phone, SELLER.phone}
    tasks = (await client.get("/api/v1/me/signatures", headers=bearer(zhang))).json()["items"]
    assert [(t["kind"], t["cancellation_id"]) for t in tasks] == [("cancellation", cid)]
    early = await client.post(f"/api/v1/cancellations/{cid}/submit", headers=bearer(wang))
    assert problem(early) == (409, "cancellation_not_ready")

    # Both scan it, read the termination, and sign after a fresh face check.
    scanned = await scan(client, zhang, cancellation["scene"])
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["cancellation_id"] == cid
    agreement = scanned.json()["document"]
    terms = agreement["terms"]
    assert agreement["template_id"] == "wq-termination"
    assert terms["title"] == "存量房买卖合同注销协议" and terms["developer"] is None
    assert terms["refund_fen"] == 20_000_00 and terms["applicants"] == [SELLER.name]
    assert terms["contract"]["contract_number"] == contract.number
    text = "".join("".join(c["clauses"]) for c in agreement["text"]["chapters"])
    assert "本协议经各出卖人、各买受人以数字证书电子签名后生效" in text
    assert (await _sign(client, zhang, cid, ZHANG.phone)).status_code == 200
    signed = await _sign(client, wang, cid, SELLER.phone)
    assert signed.status_code == 200, signed.text
    assert signed.json()["cancellation"]["status"] == "awaiting_submit"
    assert (await client.get("/api/v1/me/signatures", headers=bearer(zhang))).json()["items"] == []

    # Signed by all: no withdrawing; only its starter submits.
    no_withdraw = await client.post(f"/api/v1/cancellations/{cid}/withdraw", headers=bearer(wang))
    assert problem(no_withdraw) == (409, "cancellation_signed_by_all")
    by_other = await client.post(f"/api/v1/cancellations/{cid}/submit", headers=bearer(zhang))
    assert problem(by_other) == (403, "not_the_applicant")
    submitted = await client.post(f"/api/v1/cancellations/{cid}/submit", headers=bearer(wang))
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "approved"
    order = (await client.get(f"/api/v1/contracts/{order_id}", headers=bearer(zhang))).json()
    assert order["status"] == "cancelled"
    assert await _templates(database, keys, "resale_contract_cancelled") == {ZHANG.phone, SELLER.phone}

    # The deposit goes back to the buyer through the ledger.
    regulator = bearer(await login_phone(client, REGULATOR.phone))
    accounts = (await client.get("/api/v1/escrow/accounts", headers=regulator)).json()["items"]
    city = next(a for a in accounts if a["scope"] == "resale")
    statement_path = f"/api/v1/escrow/accounts/{city['id']}/statement"
    refunds = [
        i
        for i in (await client.get(statement_path, headers=regulator)).json()["instructions"]
        if i["kind"] == "refund"
    ]
    assert [(i["amount_fen"], i["status"]) for i in refunds] == [(20_000_00, "approved")]
    done = await client.post(
        f"/mock/bank/instructions/{refunds[0]['id']}/execute",
        json={
            "kind": "refund",
            "account_number": DEMO_RESALE_ACCOUNT_NUMBER,
            "amount_fen": 20_000_00,
        },
    )
    assert done.json()["status"] == 200, done.text
    assert ZHANG.phone in await _templates(database, keys, "resale_refund_completed")
    async with database.reader() as reader:
        assert await reconcile(reader) == []

    # The termination's evidence verifies offline, naming seller and buyer; the title is
    # free for a new sale.
    bundle = await client.get(f"/api/v1/cancellations/{cid}/evidence", headers=bearer(zhang))
    root = (settings.data_dir / "keystore" / "root.crt.pem").read_bytes()
    report = verify_bundle(bundle.json(), root)
    assert report.ok, report.to_text()
    assert f"(seller): by {SELLER.name}" in report.to_text()
    assert f"(buyer): by {ZHANG.name}" in report.to_text()
    title = d.world["resale_title"]
    assert (await check_title(client, wang, title["certificate_no"], title["check_code"])).json()[
        "live_order_id"
    ] is None
    again = await client.post(
        "/api/v1/resale/orders", json=resale_body(title["id"], LI), headers=bearer(wang)
    )
    assert again.status_code == 201, again.text


async def test_a_transferred_contract_cannot_be_cancelled_and_strangers_cannot_start_one(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    client = mock_client
    d = await demo(client, session, keys, clock)
    contract = await resale_contract(client, d, ZHANG, funds_supervised=False, seller_account=None)
    path = f"/api/v1/contracts/{contract.order_id}/cancellation"
    li = await face_verified(client, LI)
    assert problem(await client.post(path, json={"reason": "x"}, headers=bearer(li))) == (
        403,
        "not_a_party",
    )
    assert problem(await client.post(path, json={"reason": "x"}, headers=bearer(d.agent))) == (
        403,
        "order_other_company",
    )
    regulator = bearer(await login_phone(client, REGULATOR.phone))
    transfer = f"/api/v1/contracts/{contract.order_id}/transfer-registered"
    assert problem(await client.post(transfer, headers=bearer(d.agent))) == (403, "role_forbidden")
    done = await client.post(transfer, headers=regulator)
    assert done.status_code == 200 and done.json()["status"] == "transferred"
    zhang = contract.tokens[ZHANG.name]
    late = await client.post(path, json={"reason": "反悔"}, headers=bearer(zhang))
    assert problem(late) == (409, "contract_not_cancellable")


async def _templates(database: Database, keys: ServiceKeys, template: str) -> set[str]:
    async with database.reader() as reader:
        return {
            recipient(keys, message) or ""
            for message in await reader.scalars(
                select(OutboxMessage).where(OutboxMessage.template == template)
            )
        }


async def test_two_co_owners_creating_orders_at_once_leave_one_live_order(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    """A title owned jointly by 王五 and 李四: both check it and fill a contract at the same
    moment; the database's partial unique index lets one live order through."""
    client = mock_client
    await demo(client, session, keys, clock)
    world = await make_world(session, clock.now(), floors=1, per_floor=1)
    title = await register.register_title(
        session,
        keys,
        unit_id=world.units["101"],
        certificate_no="粤(2021)示范市不动产权第0000777号",
        check_code="Q7W8E9",
        registered_on=clock.now().date(),
        owners=[
            register.TitleOwnerInput(name=SELLER.name, id_number=SELLER.id_number, share="1/2"),
            register.TitleOwnerInput(name=LI.name, id_number=LI.id_number, share="1/2"),
        ],
        now=clock.now(),
    )
    await session.commit()
    tokens = {}
    for owner in (SELLER, LI):
        tokens[owner.name] = await face_verified(client, owner)
        checked = await check_title(client, tokens[owner.name], title.certificate_no, "Q7W8E9")
        assert checked.status_code == 200, checked.text
        assert [o["me"] for o in checked.json()["owners"]] == [
            owner is SELLER,
            owner is LI,
        ]
    bodies = {
        SELLER.name: resale_body(str(title.id), ZHANG, seller_phones=["", LI.phone]),
        LI.name: resale_body(str(title.id), ZHANG, seller_phones=[SELLER.phone, ""]),
    }
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/resale/orders", json=bodies[name], headers=bearer(token))
            for name, token in tokens.items()
            for _ in range(3)
        )
    )
    outcomes = Counter((a.status_code, a.json().get("code", "")) for a in answers)
    assert outcomes == {(201, ""): 1, (409, "title_unavailable"): 5}, outcomes
    created = next(a.json() for a in answers if a.status_code == 201)
    # Both owners are sellers who sign; the creator is bound already.
    assert [(p["role"], p["name"], p["share"]) for p in created["parties"]][:2] == [
        ("seller", SELLER.name, "1/2"),
        ("seller", LI.name, "1/2"),
    ]
    async with database.reader() as reader:
        live = await reader.scalar(
            select(func.count()).where(
                ContractOrder.title_id == uuid.UUID(str(title.id)),
                ContractOrder.status.in_(LIVE_STATUSES),
            )
        )
    assert live == 1
