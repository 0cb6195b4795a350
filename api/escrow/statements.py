"""What the ledger shows people: a supervised account's statement (balances, entries with
their running balance, instructions) and the payments held in suspense.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.escrow import ledger, schemas
from api.escrow.accounts import account_answer, figures
from api.escrow.instructions import instruction_answer
from api.escrow.models import (
    BankEvent,
    Instruction,
    LedgerAccount,
    LedgerKind,
    SupervisedAccount,
    Transfer,
)
from signing.pii import mask_account


async def statement(
    session: AsyncSession, account: SupervisedAccount, *, now: datetime
) -> schemas.Statement:
    numbers = await figures(session, account.id, now=now)
    own = await session.scalar(
        select(LedgerAccount.id).where(
            LedgerAccount.code == ledger.account_code(LedgerKind.supervised, account.id)
        )
    )
    rows = list(
        await session.scalars(
            select(Transfer)
            .where(or_(Transfer.debit_account_id == own, Transfer.credit_account_id == own))
            # Within one instant, money in before money out (the running balance stays true).
            .order_by(Transfer.created_at, (Transfer.credit_account_id == own), Transfer.id)
        )
    )
    other_ids = {
        r.credit_account_id if r.debit_account_id == own else r.debit_account_id for r in rows
    }
    codes = dict(
        (
            await session.execute(
                select(LedgerAccount.id, LedgerAccount.kind).where(LedgerAccount.id.in_(other_ids))
            )
        ).all()
    )
    running = 0
    entries = []
    for r in rows:
        incoming = r.debit_account_id == own
        running += r.amount_fen if incoming else -r.amount_fen
        other = r.credit_account_id if incoming else r.debit_account_id
        entries.append(
            schemas.StatementEntry(
                transfer_id=r.id,
                at=r.created_at,
                kind=r.kind,
                direction="in" if incoming else "out",
                amount_fen=r.amount_fen,
                balance_fen=running,
                counterpart=codes[other].value,
                note=r.note,
            )
        )
    instructions = list(
        await session.scalars(
            select(Instruction)
            .where(Instruction.supervised_account_id == account.id)
            .order_by(Instruction.requested_at, Instruction.id)
        )
    )
    return schemas.Statement(
        account=account_answer(account),
        balances=schemas.Balances(
            bank_balance_fen=numbers.bank_balance_fen,
            held_for_contracts_fen=numbers.held_for_contracts_fen,
            refunds_pending_fen=numbers.refunds_pending_fen,
            suspense_fen=numbers.suspense_fen,
            released_fen=numbers.released_fen,
            releases_pending_fen=numbers.releases_pending_fen,
            available_for_release_fen=numbers.available_for_release_fen,
            payouts_pending_fen=numbers.payouts_pending_fen,
        ),
        entries=entries,
        instructions=[instruction_answer(i) for i in instructions],
    )


async def suspense_items(session: AsyncSession) -> schemas.SuspenseList:
    suspense_ids = list(
        await session.scalars(
            select(LedgerAccount.id).where(LedgerAccount.kind == LedgerKind.suspense)
        )
    )
    total = sum((await ledger.balances(session, suspense_ids)).values())
    assigned = dict(
        (
            await session.execute(
                select(Transfer.corrects_transfer_id, Transfer.notice_id).where(
                    Transfer.kind == "suspense_assigned"
                )
            )
        ).all()
    )
    rows = await session.execute(
        select(Transfer, BankEvent, LedgerAccount.supervised_account_id)
        .join(BankEvent, BankEvent.id == Transfer.bank_event_id)
        .join(LedgerAccount, LedgerAccount.id == Transfer.credit_account_id)
        .where(Transfer.kind == "suspense")
        .order_by(Transfer.created_at.desc())
        .limit(500)
    )
    items = [
        schemas.SuspenseItem(
            transfer_id=t.id,
            bank_txn_id=e.txn_id,
            account_number_masked=mask_account(e.account_number),
            supervised_account_id=sa,
            reference=e.reference,
            amount_fen=t.amount_fen,
            received_at=e.received_at,
            assigned_notice_id=assigned.get(t.id),
        )
        for t, e, sa in rows
    ]
    return schemas.SuspenseList(total_fen=total, items=items)
