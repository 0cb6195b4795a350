"""Hardening of contracts and escrow from an adversarial review: each test failed while
its defect was present; the docstrings say what was wrong."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import BigInteger, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.models import ContractOrder
from api.core.clock import MovableClock
from api.core.idempotency import IdempotencyRecord
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.escrow import ledger, reconcile
from api.escrow.models import EscrowContract, LedgerKind
from api.settings import Settings
from tests.api.contracts.helpers import (
    LI,
    SEAL_KEEPER,
    ZHANG,
    create,
    create_issued,
    demo,
    face_verified,
    latest_code,
    order_body,
    scan,
    sign,
)
from tests.api.escrow.helpers import event, notices, pay, setup
from tests.api.identity.helpers import bearer


async def test_seal_password_is_not_replayed_or_stored_by_idempotency_key(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    """HIGH. The seal answer carries the 8-digit contract password "once" (Cache-Control:
    no-store; only its hash is kept on the order). Sent with an Idempotency-Key, the
    middleware stores the whole answer in clear in ``idempotency_records.response_body``
    and replays it (without no-store) to anyone holding the keeper's token for 24 h.
    Fix: api/core/idempotency.py ``IdempotencyMiddleware._finish``: do not store (delete the
    record) when the response has ``Cache-Control: no-store``; the retry then re-runs and
    gets 409 already_sealed."""
    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    issued = await create_issued(client, d, "301", ZHANG)
    order_id = issued["order"]["id"]
    assert (await scan(client, zhang, issued["scene"])).status_code == 200
    signed, _ = await sign(client, zhang, order_id, ZHANG.phone)
    assert signed.status_code == 200, signed.text
    challenge = await client.post(
        f"/api/v1/contracts/{order_id}/seal/challenge", headers=bearer(d.seal_keeper)
    )
    assert challenge.status_code == 200, challenge.text
    body = {
        "challenge_id": challenge.json()["challenge_id"],
        "code": await latest_code(client, SEAL_KEEPER.phone),
    }
    headers = {**bearer(d.seal_keeper), "Idempotency-Key": "seal-1"}
    sealed = await client.post(f"/api/v1/contracts/{order_id}/seal", json=body, headers=headers)
    assert sealed.status_code == 200, sealed.text
    password = sealed.json()["password"]

    async with database.reader() as s:
        stored = [bytes(b or b"") for b in await s.scalars(select(IdempotencyRecord.response_body))]
    assert not any(password.encode() in b for b in stored), "password stored in clear"
    replay = await client.post(f"/api/v1/contracts/{order_id}/seal", json=body, headers=headers)
    assert password not in replay.text, "password shown a second time"


async def test_bank_signature_timestamp_with_non_ascii_digit_is_not_a_500(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    """LOW (a 500 from an unauthenticated endpoint). ``"²".isdigit()`` is True but
    ``int("²")`` raises. Fix: api/escrow/signature.py ``verify``: accept ``t`` only when
    ``value.isascii() and value.isdigit()`` (or re.fullmatch(r"[0-9]{1,12}"))."""
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    body = event(amount_fen=100, reference=escrow.notices["deposit"]["reference"])
    answer = await mock_client.post(
        "/api/v1/webhooks/bank",
        content=body,
        headers={"content-type": "application/json", "X-Bank-Signature": b"t=\xb2,v1=ab"},
    )
    assert answer.status_code == 401, answer.text


async def test_qr_of_a_paid_notice_does_not_ask_for_the_full_amount_again(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MEDIUM (money). routes ``PaymentNoticeController.qr`` computes
    ``max(due - paid, 0) or due``: once a notice is paid in full the QR asks the buyer to
    pay the whole amount again (a second payment, then an overpayment and a refund).
    Fix: api/escrow/routes.py ``qr``: when ``paid >= due`` answer 409 ``notice_closed``
    (or drop the ``or notice.due_fen``)."""
    import api.escrow.routes as routes

    encoded: list[str] = []

    def capture(text: str, *args: Any, **kwargs: Any) -> bytes:
        encoded.append(text)
        return b"\x89PNG"

    monkeypatch.setattr(routes, "qr_png", capture)
    escrow = await setup(mock_client, session, keys, clock, mock_settings, deposit_fen=12_345)
    assert (await pay(mock_client, escrow, clock, "deposit", 12_345)).status_code == 200
    assert (await notices(mock_client, escrow))["deposit"]["closed"] is True
    qr = await mock_client.get(escrow.notices["deposit"]["qr_png"], headers=escrow.admin)
    if qr.status_code == 200:
        asked = int(parse_qs(urlsplit(encoded[-1]).query)["amount_fen"][0])
        assert asked == 0, f"a closed notice's QR asks for {asked} fen again"
    else:
        assert 400 <= qr.status_code < 500


async def test_reconcile_notices_held_money_moved_to_the_developer_off_the_books(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
    database: Database,
) -> None:
    """MEDIUM (audit). A transfer contract:C -> developer_payouts:S (a buyer's deposit
    "released" with no instruction and no bank event) passes ``reconcile``: it only checks
    banked kinds, bank events and the supervised balance, not the internal accounts.
    Fix: api/escrow/reconcile.py ``reconcile``: refuse kinds outside the known flows
    (payment, suspense, suspense_assigned, refund_reserved, refund_paid, release_paid) and
    check developer_payouts == sum of completed releases, buyer_refunds == sum of open
    refund instructions, each contract == its payments + assignments - refunds reserved."""
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    assert (await pay(mock_client, escrow, clock, "deposit", 1000)).status_code == 200
    async with database.reader() as s:
        assert await reconcile.reconcile(s) == []
    async with database.writer() as s, s.begin():
        contract = await s.get(EscrowContract, escrow.contract_id)
        assert contract is not None
        payouts = await ledger.ensure_account(
            s,
            LedgerKind.developer_payouts,
            supervised_account_id=uuid.UUID(escrow.account_id),
            now=clock.now(),
        )
        await ledger.post(
            s,
            [ledger.Posting(payouts, contract.ledger_account_id, 1000, "adjustment")],
            now=clock.now(),
        )
    async with database.reader() as s:
        assert await reconcile.reconcile(s) != [], "held money vanished and reconcile is silent"


def test_contract_money_columns_hold_what_the_api_accepts() -> None:
    """MEDIUM (PostgreSQL). ``NewOrder`` accepts price/deposit/down payment up to 10**13 fen
    but ``contract_orders`` stores them as INTEGER (32-bit on PostgreSQL, max 2_147_483_647
    fen = 21.47 million yuan): a 30-million-yuan flat is a 500 (DataError) on PostgreSQL.
    Escrow uses BigInteger for the same amounts. Fix: api/contracts/models.py
    ``ContractOrder`` price_fen/deposit_fen/down_payment_fen -> BigInteger, plus a migration
    (or cap the schema at 2**31-1)."""
    columns = ContractOrder.__table__.c
    for name in ("price_fen", "deposit_fen", "down_payment_fen"):
        assert isinstance(columns[name].type, BigInteger), name


async def test_co_ownership_shares_must_each_be_between_zero_and_one(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    """MEDIUM (contract terms). ``create_order`` only checks that the shares sum to 1, so
    "-1/2" and "3/2" (or "0" and "1") are frozen into a legal contract as co-ownership
    shares. Fix: api/contracts ``create_order``: refuse (422 share_invalid) any
    ``_share(b.share)`` that is <= 0 or > 1."""
    d = await demo(mock_client, session, keys, clock)
    for shares in (("-1/2", "3/2"), ("0", "1")):
        body = order_body(d.units["401"], ZHANG, LI)
        body["buyers"][0]["share"], body["buyers"][1]["share"] = shares
        created = await create(mock_client, d.agent, body)
        assert created.status_code == 422, (shares, created.status_code)


async def test_listing_orders_with_a_huge_offset_is_not_a_500(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    """LOW (a 500 for bad input). ``offset`` is only ``ge=0``; 2**63 overflows the
    database driver. Fix: api/contracts/routes.py ``list_orders``: ``Parameter(ge=0,
    le=100_000)`` on offset."""
    d = await demo(mock_client, session, keys, clock)
    listed = await mock_client.get(
        "/api/v1/contracts", params={"offset": str(2**63)}, headers=bearer(d.agent)
    )
    assert listed.status_code < 500, listed.text


async def test_a_unit_seized_after_the_draft_cannot_be_sealed_into_a_contract(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
) -> None:
    """HIGH (sale of a seized unit). The unit is checked (查封/限制, permit) only in
    ``create_order``; a court seizure registered while the order is a draft or awaiting
    signatures does not stop issue, signing or the seal, so a seized unit gets a signed
    contract (and payment notices). Fix: api/contracts: re-run the
    ``unit_sale_facts`` checks (restricted, property management, permit) in
    ``issue_order`` and in ``_sealable`` (409 unit_restricted / permit_not_found)."""
    from uuid import UUID

    from api.core.clock import business_date
    from api.register import service as register
    from api.register.models import RestrictionKind

    client = mock_client
    d = await demo(client, session, keys, clock)
    zhang = await face_verified(client, ZHANG)
    created = await create(client, d.agent, order_body(d.units["401"], ZHANG))
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    await register.add_restriction(
        session,
        unit_id=UUID(d.units["401"]),
        kind=RestrictionKind.judicial_seizure,
        source="示范市人民法院",
        document_no="(2026)示执保9号",
        starts_on=business_date(clock.now()),
        now=clock.now(),
    )
    await session.commit()

    final = "draft"
    issued = await client.post(f"/api/v1/contracts/{order_id}/issue", headers=bearer(d.agent))
    if issued.status_code == 200:
        assert (await scan(client, zhang, issued.json()["scene"])).status_code == 200
        challenge = await client.post(
            f"/api/v1/contracts/{order_id}/signatures/challenge", headers=bearer(zhang)
        )
        if challenge.status_code == 200:
            signed = await client.post(
                f"/api/v1/contracts/{order_id}/signatures",
                json={
                    "challenge_id": challenge.json()["challenge_id"],
                    "code": await latest_code(client, ZHANG.phone),
                },
                headers=bearer(zhang),
            )
            if signed.status_code == 200:
                seal_challenge = await client.post(
                    f"/api/v1/contracts/{order_id}/seal/challenge", headers=bearer(d.seal_keeper)
                )
                if seal_challenge.status_code == 200:
                    await client.post(
                        f"/api/v1/contracts/{order_id}/seal",
                        json={
                            "challenge_id": seal_challenge.json()["challenge_id"],
                            "code": await latest_code(client, SEAL_KEEPER.phone),
                        },
                        headers=bearer(d.seal_keeper),
                    )
        final = (await client.get(f"/api/v1/contracts/{order_id}", headers=bearer(d.agent))).json()[
            "status"
        ]
    assert final != "signed", "a judicially seized unit was sold"
