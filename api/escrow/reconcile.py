"""Reconciliation: the ledger checked against the recorded bank events and its own
invariants (``wangqian reconcile``).
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.escrow import ledger
from api.escrow.models import (
    BankEvent,
    Instruction,
    InstructionStatus,
    LedgerAccount,
    LedgerKind,
    Side,
    SupervisedAccount,
    Transfer,
)
from signing.pii import mask_account

# Every kind of transfer the rules make, with the (debit, credit) account kinds it may
# touch; anything else in the ledger was not made by these rules and is reported.
FLOWS: dict[str, set[tuple[LedgerKind | None, LedgerKind | None]]] = {
    "payment": {(LedgerKind.supervised, LedgerKind.contract)},
    "suspense": {
        (LedgerKind.supervised, LedgerKind.suspense),
        (LedgerKind.bank_clearing, LedgerKind.suspense),
    },
    "suspense_assigned": {(LedgerKind.suspense, LedgerKind.contract)},
    "refund_reserved": {(LedgerKind.contract, LedgerKind.buyer_refunds)},
    "refund_paid": {(LedgerKind.buyer_refunds, LedgerKind.supervised)},
    "release_paid": {(LedgerKind.developer_payouts, LedgerKind.supervised)},
    "payout_reserved": {(LedgerKind.contract, LedgerKind.seller_payouts)},
    "payout_paid": {(LedgerKind.seller_payouts, LedgerKind.supervised)},
}


async def reconcile(session: AsyncSession) -> list[str]:
    """Check the ledger against the recorded bank events and its invariants; return the
    problems found (empty when all is well)."""
    problems: list[str] = []
    accounts = list(await session.scalars(select(LedgerAccount)))
    raw = await ledger.nets(session, [a.id for a in accounts])
    if sum(raw.values()) != 0:
        problems.append(f"sum of all balances is {sum(raw.values())}, not 0")
    for a in accounts:
        own = raw[a.id] if a.side is Side.debit else -raw[a.id]
        if a.guarded and own < 0:
            problems.append(f"guarded account {a.code} is negative: {own}")
    banked = {"payment", "suspense", "refund_paid", "release_paid", "payout_paid"}
    transfers = list(await session.scalars(select(Transfer)))
    kinds = {a.id: a.kind for a in accounts}
    for t in transfers:
        allowed = FLOWS.get(t.kind)
        pair = (kinds.get(t.debit_account_id), kinds.get(t.credit_account_id))
        if allowed is None or pair not in allowed:
            problems.append(
                f"transfer {t.id} ({t.kind}) moves money {pair[1]} -> {pair[0]}, "
                "which no flow of the supervised-funds rules does"
            )
    by_event: dict[uuid.UUID, list[Transfer]] = {}
    for t in transfers:
        if t.kind in banked and t.bank_event_id is None:
            problems.append(f"transfer {t.id} ({t.kind}) has no bank event")
        if t.bank_event_id is not None:
            by_event.setdefault(t.bank_event_id, []).append(t)
    events = list(await session.scalars(select(BankEvent)))
    bank_view: dict[str, int] = {}
    for e in events:
        moved = by_event.get(e.id, [])
        if len(moved) != 1 or moved[0].amount_fen != e.amount_fen:
            problems.append(f"bank event {e.txn_id} is not booked exactly once for {e.amount_fen}")
        sign = 1 if e.event_type == "payment.received" else -1
        bank_view[e.account_number] = bank_view.get(e.account_number, 0) + sign * e.amount_fen
    supervised = {s.id: s.account_number for s in await session.scalars(select(SupervisedAccount))}
    for a in accounts:
        if a.kind is LedgerKind.supervised and a.supervised_account_id is not None:
            number = supervised[a.supervised_account_id]
            expected = bank_view.get(number, 0)
            if raw[a.id] != expected:
                problems.append(
                    f"supervised account {mask_account(number)}: ledger {raw[a.id]}, "
                    f"bank events {expected}"
                )
    by_id = {t.id: t for t in transfers}
    for t in transfers:
        if t.kind == "suspense_assigned":
            fixed = by_id.get(t.corrects_transfer_id) if t.corrects_transfer_id else None
            if fixed is None or fixed.kind != "suspense" or fixed.amount_fen != t.amount_fen:
                problems.append(f"transfer {t.id} assigns no matching suspense payment")
    for i in await session.scalars(select(Instruction)):
        if i.status is InstructionStatus.completed and i.bank_event_id is None:
            problems.append(f"instruction {i.id} completed without a bank event")
    return problems


async def reconcile_summary(session: AsyncSession) -> str:
    transfers = await session.scalar(select(func.count()).select_from(Transfer))
    events = await session.scalar(select(func.count()).select_from(BankEvent))
    accounts = await session.scalar(select(func.count()).select_from(LedgerAccount))
    return f"账户 {accounts} 个，转账 {transfers} 笔，银行流水 {events} 笔。"
