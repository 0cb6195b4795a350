"""Bank payments recorded and applied in groups: one transaction, one commit, for every
payment webhook that arrived while the previous group was being written (group commit).

Why: py-spy under wrk showed a new payment holding SQLite's single write lock for about a
dozen statements, each a round trip to aiosqlite's thread, so payments went through one
after another at ~100/s however many the bank sent at once. Here the deliveries waiting
for the lock are taken together: the events are inserted in one statement, the accounts,
notices, contracts and sums read once for all of them, the transfers posted in one.

Nothing changes for the bank: each delivery is answered only after the transaction that
stored its event and its transfer has committed, with the same outcome as before
(applied, overpaid, suspense, refunded); a replay of a stored transaction id is a
duplicate, in the same group or a later one, in this process or another (the insert
skips a stored id and the stored row is read back). A group that fails as a whole is
tried again one delivery per transaction, so one bad event never takes the others down.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.keys import ServiceKeys
from api.db.engine import Database, insert_into
from api.escrow import bank_events, ledger, schemas
from api.escrow.ledger import Posting
from api.escrow.models import (
    BankEvent,
    EscrowContract,
    LedgerAccount,
    LedgerKind,
    PaymentNotice,
    SupervisedAccount,
)
from api.escrow.notices import arrival_messages, paid_by_notice
from api.outbox import service as outbox

log = logging.getLogger("wangqian.escrow")

# Deliveries per transaction: enough to take a whole wave of the bank's retries at once,
# few enough that the write lock is never held long for the requests behind it.
GROUP_LIMIT = 200

Answer = schemas.WebhookAnswer | Exception


@dataclass
class Delivery:
    """One verified payment webhook waiting for its group."""

    event: schemas.BankWebhook
    body: bytes
    now: datetime
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = bank_events.fingerprint_of(self.event)


class PaymentGroups:
    """Per process: deliveries queue here and one task writes them group by group."""

    def __init__(self, database: Database, keys: ServiceKeys) -> None:
        self._database = database
        self._keys = keys
        self._waiting: list[tuple[Delivery, asyncio.Future[Answer]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def deliver(self, delivery: Delivery) -> schemas.WebhookAnswer:
        """The bank's answer, once the event is stored and applied (committed)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Answer] = loop.create_future()
        self._waiting.append((delivery, answer))
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._writer = loop.create_task(self._write_groups())
        # A bank hanging up stops its own wait only: the group it joined is written anyway.
        result = await asyncio.shield(answer)
        if isinstance(result, Exception):
            raise result
        return result

    async def _write_groups(self) -> None:
        while self._waiting:
            # One turn of the loop first: deliveries already read off their sockets join.
            await asyncio.sleep(0)
            group = self._waiting[:GROUP_LIMIT]
            del self._waiting[:GROUP_LIMIT]
            try:
                answers = await self._write([delivery for delivery, _ in group])
            except BaseException as error:  # the process is stopping: nobody waits forever
                for _, answer in group + self._waiting:
                    if not answer.done():
                        answer.set_exception(error)
                self._waiting.clear()
                raise
            for (_, answer), result in zip(group, answers, strict=True):
                if not answer.done():
                    answer.set_result(result)

    async def _write(self, deliveries: list[Delivery]) -> list[Answer]:
        if len(deliveries) > 1:
            try:
                async with self._database.writer() as session, session.begin():
                    return await apply_payments(session, self._keys, deliveries)
            except Exception:
                log.exception("a group of %d bank payments failed: one by one", len(deliveries))
        return [await self._write_one(delivery) for delivery in deliveries]

    async def _write_one(self, delivery: Delivery) -> Answer:
        try:
            async with self._database.writer() as session, session.begin():
                return (await apply_payments(session, self._keys, [delivery]))[0]
        except Exception as error:  # the request that sent it answers for it (a 500 is logged)
            return error


async def apply_payments(
    session: AsyncSession, keys: ServiceKeys, deliveries: list[Delivery]
) -> list[Answer]:
    """Store and apply payment events in the caller's transaction, each bank transaction id
    once; an answer (or the refusal) per delivery, in their order."""
    now = max(d.now for d in deliveries)
    first: dict[str, Delivery] = {}
    for delivery in deliveries:
        first.setdefault(delivery.event.data.transaction_id, delivery)
    proposed = {txn: uuid.uuid4() for txn in first}
    # RETURNING names the ones this transaction stored; the rest were stored before (a
    # replay), or just now by another process, whose row is read back to compare. In
    # order of transaction id: two processes holding some of the same ids wait for each
    # other in one order, never in a circle (PostgreSQL would abort one as a deadlock).
    events = BankEvent.__table__
    inserted = set(
        await session.scalars(
            insert_into(session, events)
            .on_conflict_do_nothing(index_elements=["txn_id"])
            .returning(events.c.txn_id),
            [_event_row(proposed[txn], d) for txn, d in sorted(first.items())],
        )
    )
    seen = [txn for txn in first if txn not in inserted]
    stored = {
        row.txn_id: row
        for row in (
            await session.execute(
                select(
                    BankEvent.txn_id, BankEvent.fingerprint, BankEvent.outcome, BankEvent.amount_fen
                ).where(BankEvent.txn_id.in_(seen))
            )
            if seen
            else []
        )
    }
    new = [(proposed[txn], d.event.data) for txn, d in first.items() if txn in inserted]
    outcomes = await _apply_new(session, keys, new, now=now) if new else {}
    if outcomes:
        await session.execute(
            update(events)
            .where(events.c.id == bindparam("event_id"))
            .values(outcome=bindparam("event_outcome")),
            [
                {"event_id": proposed[txn], "event_outcome": outcome}
                for txn, outcome in outcomes.items()
            ],
        )
    answers: list[Answer] = []
    for delivery in deliveries:
        data = delivery.event.data
        txn = data.transaction_id
        if txn in inserted:
            if delivery is first[txn]:
                answers.append(schemas.WebhookAnswer(True, False, txn, outcomes[txn]))
            elif delivery.fingerprint != first[txn].fingerprint:
                answers.append(
                    bank_events.replayed_differently(data, first[txn].event.data.amount_fen)
                )
            else:
                answers.append(schemas.WebhookAnswer(True, True, txn, outcomes[txn]))
        elif stored[txn].fingerprint != delivery.fingerprint:
            answers.append(bank_events.replayed_differently(data, stored[txn].amount_fen))
        else:
            answers.append(schemas.WebhookAnswer(True, True, txn, stored[txn].outcome))
    return answers


def _event_row(event_id: uuid.UUID, delivery: Delivery) -> dict[str, Any]:
    data = delivery.event.data
    return {
        "id": event_id,
        "txn_id": data.transaction_id,
        "event_type": delivery.event.type,
        "fingerprint": delivery.fingerprint,
        "amount_fen": data.amount_fen,
        "account_number": data.account_number,
        "reference": data.reference or data.instruction_id,
        "outcome": "pending",
        "body": delivery.body.decode("utf-8", "replace"),
        "received_at": delivery.now,
    }


@dataclass(frozen=True)
class _Matched:
    event_id: uuid.UUID
    data: schemas.BankEventData
    account: SupervisedAccount
    notice: PaymentNotice
    contract: EscrowContract
    supervised_ledger: uuid.UUID


async def _apply_new(
    session: AsyncSession,
    keys: ServiceKeys,
    new: list[tuple[uuid.UUID, schemas.BankEventData]],
    *,
    now: datetime,
) -> dict[str, str]:
    """Outcome per transaction id. A payment naming its notice's account, on a contract
    still going, is posted with the others in one go; the rest (suspense, a cancelled
    contract's refund) take the one-event path."""
    references = {data.reference.strip().upper() for _, data in new} - {""}
    # Each notice with its contract, the contract's supervised account and that account's
    # ledger, in one query; whatever is missing or does not agree with the bank's account
    # number takes the one-event path, which tells the cases apart.
    notices = {
        row[0].reference: row
        for row in (
            await session.execute(
                select(PaymentNotice, EscrowContract, SupervisedAccount, LedgerAccount.id)
                .join(EscrowContract, EscrowContract.contract_id == PaymentNotice.contract_id)
                .join(
                    SupervisedAccount, SupervisedAccount.id == EscrowContract.supervised_account_id
                )
                .outerjoin(
                    LedgerAccount,
                    and_(
                        LedgerAccount.supervised_account_id == SupervisedAccount.id,
                        LedgerAccount.kind == LedgerKind.supervised,
                    ),
                )
                .where(PaymentNotice.reference.in_(references))
            )
            if references
            else []
        )
    }
    outcomes: dict[str, str] = {}
    matched: list[_Matched] = []
    for event_id, data in new:
        found = notices.get(data.reference.strip().upper())
        if found is None:
            plain = False
        else:
            notice, contract, account, supervised_ledger = found
            plain = (
                account.account_number == data.account_number
                and contract.cancelled_at is None
                and supervised_ledger is not None
            )
        if plain:
            matched.append(_Matched(event_id, data, account, notice, contract, supervised_ledger))
        else:
            outcomes[data.transaction_id] = await bank_events.apply_payment(
                session, keys, event_id, data, now=now
            )
    if matched:
        outcomes.update(await _credit_notices(session, keys, matched, now=now))
    return outcomes


async def _credit_notices(
    session: AsyncSession, keys: ServiceKeys, matched: list[_Matched], *, now: datetime
) -> dict[str, str]:
    """supervised:A -> contract:C for each payment, in one posting; each buyer hears of
    each payment, all the messages queued in one insert."""
    await ledger.post(
        session,
        [
            Posting(
                m.supervised_ledger,
                m.contract.ledger_account_id,
                m.data.amount_fen,
                "payment",
                bank_event_id=m.event_id,
                notice_id=m.notice.id,
            )
            for m in matched
        ],
        now=now,
    )
    messages = [
        message
        for m in matched
        for message in arrival_messages(
            keys, m.contract, m.notice, m.account, m.data.transaction_id, m.data.amount_fen
        )
    ]
    await outbox.enqueue_to_people(session, keys, messages, now=now)
    # Read after posting, so after the ledger locks (PostgreSQL): less this group's own
    # payments, then each added in the order they came.
    paid = await paid_by_notice(session, list({m.notice.id for m in matched}))
    for m in matched:
        paid[m.notice.id] -= m.data.amount_fen
    outcomes: dict[str, str] = {}
    for m in matched:
        # In the order they came: the payment that takes the notice past its due is the
        # first "overpaid", as it would be one at a time.
        paid[m.notice.id] += m.data.amount_fen
        outcomes[m.data.transaction_id] = (
            "overpaid" if paid[m.notice.id] > m.notice.due_fen else "applied"
        )
    return outcomes
