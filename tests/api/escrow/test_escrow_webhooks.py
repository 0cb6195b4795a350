"""The bank webhook over HTTP: signatures, idempotent replays, partial and over-payments,
suspense, the buyer's SMS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.escrow import signature
from api.settings import Settings
from tests.api.escrow.helpers import (
    BUYER,
    event,
    notices,
    pay,
    post_event,
    setup,
    statement,
)
from tests.api.outbox.helpers import recipient


async def test_signature_missing_bad_stale(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    body = event(amount_fen=100, reference=escrow.notices["deposit"]["reference"])
    missing = await post_event(mock_client, body, escrow.secret, clock, header="")
    assert missing.status_code == 401
    assert missing.json()["code"] == "bank_signature_missing"
    bad = await post_event(mock_client, body, "not-the-secret", clock)
    assert bad.json()["code"] == "bank_signature_invalid"
    garbled = await post_event(mock_client, body, escrow.secret, clock, header="v1=abc")
    assert garbled.json()["code"] == "bank_signature_invalid"
    # Signed over another body: invalid.
    t = int(clock.now().timestamp())
    other = signature.sign_header(escrow.secret, t, body + b" ")
    tampered = await post_event(mock_client, body, escrow.secret, clock, header=other)
    assert tampered.json()["code"] == "bank_signature_invalid"
    stale = await post_event(mock_client, body, escrow.secret, clock, timestamp=t - 301)
    assert stale.status_code == 401
    assert stale.json()["code"] == "bank_signature_stale"
    future = await post_event(mock_client, body, escrow.secret, clock, timestamp=t + 301)
    assert future.json()["code"] == "bank_signature_stale"
    within = await post_event(mock_client, body, escrow.secret, clock, timestamp=t - 299)
    assert within.status_code == 200, within.text
    assert (await notices(mock_client, escrow))["deposit"]["paid_fen"] == 100


async def test_rotated_secrets_both_accepted(
    session: AsyncSession, keys: ServiceKeys, clock: MovableClock, mock_settings: Settings
) -> None:
    import msgspec

    from api.app import create_app
    from api.db.engine import create_database

    rotated = msgspec.structs.replace(mock_settings, bank_webhook_secrets="old-secret, new-secret")
    database = create_database(rotated)
    loopback = httpx.ASGITransport(app=None)  # type: ignore[arg-type]
    app = create_app(rotated, clock=clock, database=database, http_transport=loopback)
    loopback.app = app
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            escrow = await setup(client, session, keys, clock, rotated)
            reference = escrow.notices["deposit"]["reference"]
            for secret in ("old-secret", "new-secret"):
                answer = await post_event(
                    client, event(amount_fen=10, reference=reference), secret, clock
                )
                assert answer.status_code == 200, answer.text
            demo = await post_event(
                client, event(amount_fen=10, reference=reference), escrow.secret, clock
            )
            assert demo.json()["code"] == "bank_signature_invalid"  # configured ones only
            # Both signatures in one header (the bank signing with old and new): accepted.
            body = event(amount_fen=10, reference=reference)
            t = int(clock.now().timestamp())
            both = (
                f"t={t},v1={signature.compute('retired', t, body)},"
                f"v1={signature.compute('new-secret', t, body)}"
            )
            assert (await post_event(client, body, "", clock, header=both)).status_code == 200
            assert (await notices(client, escrow))["deposit"]["paid_fen"] == 30
    finally:
        await database.dispose()


async def test_replays_are_idempotent_and_conflicts_refused(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    first = await pay(mock_client, escrow, clock, "deposit", 500_000, txn="BK-REPLAY-1")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "received": True,
        "duplicate": False,
        "transaction_id": "BK-REPLAY-1",
        "outcome": "applied",
    }
    clock.advance(timedelta(minutes=10))  # a retry later, freshly signed
    again = await pay(mock_client, escrow, clock, "deposit", 500_000, txn="BK-REPLAY-1")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    conflict = await pay(mock_client, escrow, clock, "deposit", 999, txn="BK-REPLAY-1")
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "bank_txn_conflict"
    state = await notices(mock_client, escrow)
    assert state["deposit"]["paid_fen"] == 500_000
    assert (await statement(mock_client, escrow))["balances"]["bank_balance_fen"] == 500_000
    assert "BK-REPLAY-1" in caplog.text  # the refused replay is logged


async def test_partial_exact_and_over_payment(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(
        mock_client, session, keys, clock, mock_settings, deposit_fen=1000, down_payment_fen=5000
    )
    start = escrow.notices["deposit"]
    assert start["status"] == "unpaid" and start["closed"] is False
    assert start["account_number_masked"] == "6222 **** **** 3445"
    assert (await pay(mock_client, escrow, clock, "deposit", 400)).status_code == 200
    partial = (await notices(mock_client, escrow))["deposit"]
    assert (partial["status"], partial["paid_fen"], partial["outstanding_fen"]) == (
        "partial",
        400,
        600,
    )
    assert partial["closed"] is False
    assert (await pay(mock_client, escrow, clock, "deposit", 600)).status_code == 200
    paid = (await notices(mock_client, escrow))["deposit"]
    assert (paid["status"], paid["closed"], paid["refund_flagged"]) == ("paid", True, False)
    over = await pay(mock_client, escrow, clock, "down_payment", 7000)
    assert over.json()["outcome"] == "overpaid"
    flagged = (await notices(mock_client, escrow))["down_payment"]
    assert flagged["status"] == "overpaid"
    assert flagged["overpaid_fen"] == 2000
    assert flagged["refund_flagged"] is True and flagged["closed"] is False
    balances = (await statement(mock_client, escrow))["balances"]
    assert balances["bank_balance_fen"] == 8000
    assert balances["held_for_contracts_fen"] == 8000


async def test_arrived_sms_to_buyer(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
    mock_app: object,
) -> None:
    from sqlalchemy import select

    from api.outbox.models import OutboxMessage

    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    await pay(mock_client, escrow, clock, "down_payment", 30_000_000, txn="BK-SMS-1")
    await pay(mock_client, escrow, clock, "down_payment", 30_000_000, txn="BK-SMS-1")
    rows = list(
        await session.scalars(
            select(OutboxMessage).where(OutboxMessage.template == "down_payment_arrived")
        )
    )
    # Unique per bank transaction and buyer, and the key names the buyer by the phone's
    # keyed index: no phone number in clear in the outbox.
    assert [r.dedupe_key for r in rows] == [f"BK-SMS-1:arrived:{keys.phone_index(BUYER)}"]
    assert BUYER not in rows[0].dedupe_key
    assert recipient(keys, rows[0]) == BUYER
    assert rows[0].contract_id == escrow.contract_id


async def test_a_number_the_sms_providers_refuse_does_not_stop_the_payment(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
    mock_app: Any,
) -> None:
    # A business number with a hyphen (bench_webhooks hands over "YS-BENCH") is not an
    # SMS "other number" variable (letters and digits). The payment is the bank's fact:
    # it is recorded, and the message that cannot be sent dies where staff see it.
    escrow = await setup(
        mock_client, session, keys, clock, mock_settings, contract_number="YS-BENCH"
    )
    paid = await pay(mock_client, escrow, clock, "down_payment", 30_000_000, txn="BK-HYPHEN")
    assert paid.status_code == 200, paid.text
    assert (await notices(mock_client, escrow))["down_payment"]["status"] == "paid"
    worker = mock_app.state.outbox
    while await worker.run_once():
        pass
    log = await mock_client.get(
        "/api/v1/notifications", headers=escrow.admin, params={"status": "dead"}
    )
    assert log.status_code == 200, log.text
    dead = [m for m in log.json()["items"] if m["template"] == "down_payment_arrived"]
    assert len(dead) == 1 and dead[0]["contract_id"] == str(escrow.contract_id)
    assert "business_no" in dead[0]["last_error"] and "YS-BENCH" in dead[0]["last_error"]
    inbox = await mock_client.get("/mock/sms/inbox", params={"phone": BUYER})
    assert not any("首付款" in m["text"] for m in inbox.json())


async def test_unknown_reference_goes_to_suspense(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    unknown = await post_event(
        mock_client, event(amount_fen=777, reference="WQNOSUCHREF"), escrow.secret, clock
    )
    assert unknown.json()["outcome"] == "suspense"
    elsewhere = await post_event(
        mock_client,
        event(amount_fen=5, reference="X", account_number="9999888877776666"),
        escrow.secret,
        clock,
    )
    assert elsewhere.json()["outcome"] == "suspense"
    listed = await mock_client.get("/api/v1/escrow/suspense", headers=escrow.regulator)
    assert listed.status_code == 200
    body = listed.json()
    assert body["total_fen"] == 782
    assert sorted(i["amount_fen"] for i in body["items"]) == [5, 777]
    assert {i["account_number_masked"] for i in body["items"]} == {
        "6222 **** **** 3445",
        "9999 **** **** 6666",
    }
    # Company staff cannot see suspense; the account's money is not releasable.
    refused = await mock_client.get("/api/v1/escrow/suspense", headers=escrow.admin)
    assert refused.status_code == 403
    balances = (await statement(mock_client, escrow))["balances"]
    assert balances["suspense_fen"] == 777
    assert balances["available_for_release_fen"] == 0

    # The regulator matches the payment to its notice: a correcting transfer, once.
    items = {i["amount_fen"]: i for i in body["items"]}
    deposit = escrow.notices["deposit"]["id"]
    assign = f"/api/v1/escrow/suspense/{items[777]['transfer_id']}/assign"
    by_admin = await mock_client.post(assign, headers=escrow.admin, json={"notice_id": deposit})
    assert by_admin.status_code == 403
    matched = await mock_client.post(assign, headers=escrow.regulator, json={"notice_id": deposit})
    assert matched.status_code == 200, matched.text
    assert {n["kind"]: n["paid_fen"] for n in matched.json()["items"]}["deposit"] == 777
    again = await mock_client.post(assign, headers=escrow.regulator, json={"notice_id": deposit})
    assert again.json()["code"] == "suspense_already_assigned"
    foreign = await mock_client.post(
        f"/api/v1/escrow/suspense/{items[5]['transfer_id']}/assign",
        headers=escrow.regulator,
        json={"notice_id": deposit},
    )
    assert foreign.json()["code"] == "suspense_account_mismatch"
    after = (await mock_client.get("/api/v1/escrow/suspense", headers=escrow.regulator)).json()
    assert after["total_fen"] == 5
    assert {i["amount_fen"]: i["assigned_notice_id"] for i in after["items"]} == {
        777: deposit,
        5: None,
    }
    balances = (await statement(mock_client, escrow))["balances"]
    assert (balances["suspense_fen"], balances["held_for_contracts_fen"]) == (0, 777)
    async with session.begin():
        from api.escrow import reconcile

        assert await reconcile.reconcile(session) == []


async def test_malformed_event_refused(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    for body in (b"{}", b"not json", event(amount_fen=0), event(kind="payment.reversed")):
        answer = await post_event(mock_client, body, escrow.secret, clock)
        assert answer.status_code == 422, body
        assert answer.json()["code"] == "bank_event_invalid"


async def test_concurrent_deliveries_count_once(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    import asyncio

    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    reference = escrow.notices["down_payment"]["reference"]
    same = event(amount_fen=1000, reference=reference, txn="BK-RACE")
    distinct = [event(amount_fen=100, reference=reference) for _ in range(8)]
    answers = await asyncio.gather(
        *(post_event(mock_client, body, escrow.secret, clock) for body in [same] * 6 + distinct)
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    first_six = [a.json()["duplicate"] for a in answers[:6]]
    assert sorted(first_six) == [False] + [True] * 5
    assert (await notices(mock_client, escrow))["down_payment"]["paid_fen"] == 1000 + 800


async def test_an_idempotency_key_cannot_block_a_bank_event(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    """Webhooks are idempotent by the bank's transaction id; an anonymous caller who sends
    a forged event with the bank's next Idempotency-Key must not block the real one."""
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    forged = await mock_client.post(
        "/api/v1/webhooks/bank",
        content=b"{}",
        headers={"Idempotency-Key": "bank-42", "X-Bank-Signature": "t=1,v1=00"},
    )
    assert forged.status_code == 401
    real = await pay(mock_client, escrow, clock, "deposit", 1000, idempotency_key="bank-42")
    assert real.status_code == 200, real.text
