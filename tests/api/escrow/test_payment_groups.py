"""Bank payments written in groups (one transaction for all that arrived together): the
same outcomes, duplicates and refusals as one at a time, a clean ledger, and a group that
fails rolled back whole and written again one payment per transaction."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.escrow import bank_events, payment_batches, reconcile, schemas
from api.escrow.models import BankEvent, Transfer
from api.escrow.payment_batches import Delivery, PaymentGroups, apply_payments
from api.outbox.models import OutboxMessage
from api.settings import Settings
from tests.api.escrow.helpers import event, notices, post_event, setup, statement


def _delivery(body: bytes, clock: MovableClock) -> Delivery:
    return Delivery(msgspec.json.decode(body, type=schemas.BankWebhook), body, clock.now())


async def _counts(database: Database) -> tuple[int, int]:
    async with database.reader() as s:
        events = await s.scalar(select(func.count()).select_from(BankEvent))
        transfers = await s.scalar(select(func.count()).select_from(Transfer))
    return int(events or 0), int(transfers or 0)


async def test_a_group_answers_as_one_at_a_time(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(
        mock_client, session, keys, clock, mock_settings, deposit_fen=1000, down_payment_fen=5000
    )
    deposit = escrow.notices["deposit"]["reference"]
    earlier = event(amount_fen=100, reference=deposit, txn="BK-G-EARLIER")
    async with database.writer() as s, s.begin():
        [answer] = await apply_payments(s, keys, [_delivery(earlier, clock)])
    assert answer == schemas.WebhookAnswer(True, False, "BK-G-EARLIER", "applied")

    clock.advance(timedelta(seconds=1))
    bodies = [
        event(amount_fen=500, reference=deposit, txn="BK-G-1"),
        event(amount_fen=500, reference=deposit, txn="BK-G-2"),  # 1100 of 1000: overpaid
        event(amount_fen=500, reference=deposit, txn="BK-G-1"),  # the bank's retry, same group
        event(amount_fen=7, reference=deposit, txn="BK-G-2"),  # the same id, other content
        earlier,  # stored by an earlier group
        event(amount_fen=300, reference="NO-SUCH-NOTICE", txn="BK-G-3"),
        event(amount_fen=200, account_number="9999000011112222", txn="BK-G-4"),
    ]
    async with database.writer() as s, s.begin():
        answers = await apply_payments(s, keys, [_delivery(b, clock) for b in bodies])
    plain = [a.code if isinstance(a, DomainError) else a for a in answers]
    assert plain == [
        schemas.WebhookAnswer(True, False, "BK-G-1", "applied"),
        schemas.WebhookAnswer(True, False, "BK-G-2", "overpaid"),
        schemas.WebhookAnswer(True, True, "BK-G-1", "applied"),
        "bank_txn_conflict",
        schemas.WebhookAnswer(True, True, "BK-G-EARLIER", "applied"),
        schemas.WebhookAnswer(True, False, "BK-G-3", "suspense"),
        schemas.WebhookAnswer(True, False, "BK-G-4", "suspense"),
    ]
    assert isinstance(answers[3], DomainError)
    assert await _counts(database) == (5, 5)
    async with database.reader() as s:
        outcomes = dict((await s.execute(select(BankEvent.txn_id, BankEvent.outcome))).all())
        assert "pending" not in outcomes.values()
        assert await reconcile.reconcile(s) == []
    state = await notices(mock_client, escrow)
    assert state["deposit"]["paid_fen"] == 1100
    assert state["deposit"]["status"] == "overpaid"
    # One arrival message per payment to a notice; the retry in the group sends none.
    async with database.reader() as s:
        arrived = await s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.template == "deposit_arrived")
        )
    assert arrived == 3


async def test_concurrent_deliveries_share_groups_and_count_once(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    reference = escrow.notices["down_payment"]["reference"]
    sizes: list[int] = []
    real = payment_batches.apply_payments

    async def counted(s: AsyncSession, k: ServiceKeys, deliveries: list[Delivery]) -> Any:
        sizes.append(len(deliveries))
        return await real(s, k, deliveries)

    monkeypatch.setattr(payment_batches, "apply_payments", counted)
    same = event(amount_fen=1000, reference=reference, txn="BK-GROUP-RACE")
    other = event(amount_fen=1, reference=reference, txn="BK-GROUP-RACE")
    distinct = [event(amount_fen=100, reference=reference) for _ in range(30)]
    bodies = [same] * 5 + distinct + [other]
    answers = await asyncio.gather(
        *(post_event(mock_client, body, escrow.secret, clock) for body in bodies)
    )
    codes = [a.status_code for a in answers]
    assert codes[:-1] == [200] * 35 and codes[-1] == 409, [a.text for a in answers]
    assert answers[-1].json()["code"] == "bank_txn_conflict"
    assert sorted(a.json()["duplicate"] for a in answers[:5]) == [False] + [True] * 4
    assert max(sizes) > 1  # they were written together, not one after another
    assert sum(sizes) == len(bodies)
    assert (await notices(mock_client, escrow))["down_payment"]["paid_fen"] == 1000 + 3000
    assert (await statement(mock_client, escrow))["balances"]["bank_balance_fen"] == 4000
    assert await _counts(database) == (31, 31)
    async with database.reader() as s:
        assert await reconcile.reconcile(s) == []


async def test_a_failing_group_is_rolled_back_and_written_one_by_one(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    reference = escrow.notices["deposit"]["reference"]
    real = payment_batches._credit_notices
    failed: list[int] = []

    async def fails_in_groups(s: AsyncSession, k: ServiceKeys, matched: Any, **kw: Any) -> Any:
        result = await real(s, k, matched, **kw)  # written, then lost with the rollback
        if len(matched) > 1:
            failed.append(len(matched))
            raise RuntimeError("a group breaks after posting")
        return result

    monkeypatch.setattr(payment_batches, "_credit_notices", fails_in_groups)
    bodies = [event(amount_fen=100, reference=reference) for _ in range(12)]
    answers = await asyncio.gather(
        *(post_event(mock_client, body, escrow.secret, clock) for body in bodies)
    )
    assert [a.status_code for a in answers] == [200] * 12, [a.text for a in answers]
    assert all(a.json()["duplicate"] is False for a in answers)
    assert failed  # a group did fail, and nothing of it stayed
    assert (await notices(mock_client, escrow))["deposit"]["paid_fen"] == 1200
    assert await _counts(database) == (12, 12)
    async with database.reader() as s:
        assert await reconcile.reconcile(s) == []


def test_both_paths_store_the_same_fingerprint(clock: MovableClock) -> None:
    """The fingerprint a group stores is the one a later replay is compared with."""
    body = event(amount_fen=5, txn="BK-FP")
    decoded = msgspec.json.decode(body, type=schemas.BankWebhook)
    assert _delivery(body, clock).fingerprint == bank_events.fingerprint_of(decoded)


async def test_two_processes_writing_the_same_transaction_credit_it_once(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    """Two API processes (two groups' writers, each its own transaction; concurrent on
    PostgreSQL) get the same bank transaction at once: one stores it, the other answers
    a duplicate once the first has committed."""
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    reference = escrow.notices["down_payment"]["reference"]
    first, second = PaymentGroups(database, keys), PaymentGroups(database, keys)
    same = event(amount_fen=700, reference=reference, txn="BK-TWO-NODES")
    others = [event(amount_fen=10, reference=reference) for _ in range(6)]
    answers = await asyncio.gather(
        *(
            groups.deliver(_delivery(body, clock))
            for body in [same, *others[:3]]
            for groups in (first, second)
        ),
        *(first.deliver(_delivery(body, clock)) for body in others[3:]),
        return_exceptions=True,
    )
    assert not [a for a in answers if isinstance(a, BaseException)], answers
    # Four transactions went to both: each stored by one, a duplicate to the other.
    by_txn: dict[str, list[bool]] = {}
    for answer in answers:
        assert isinstance(answer, schemas.WebhookAnswer)
        by_txn.setdefault(answer.transaction_id, []).append(answer.duplicate)
    assert sorted(by_txn["BK-TWO-NODES"]) == [False, True]
    assert sorted(map(sorted, by_txn.values())) == [[False]] * 3 + [[False, True]] * 4
    assert (await notices(mock_client, escrow))["down_payment"]["paid_fen"] == 700 + 60
    assert await _counts(database) == (7, 7)
    async with database.reader() as s:
        assert await reconcile.reconcile(s) == []
