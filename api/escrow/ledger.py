"""The double-entry ledger: accounts with a side and a guard, and append-only transfers.

Every transfer moves a positive amount from one account (debited) to another (credited),
so the sum over all accounts of (debits - credits) is zero by construction. A *guarded*
account may never go below zero on its own side: before posting, the accounts involved
are locked (PostgreSQL ``SELECT ... FOR UPDATE``; a SQLite writer already holds the
database write lock), their balances summed from the transfers, and the post refused if a
guard would break. Nothing here updates or deletes a transfer; corrections are new ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.db.engine import insert_into
from api.escrow.models import LedgerAccount, LedgerKind, Side, Transfer

CLEARING = "bank_clearing"
GLOBAL_SUSPENSE = "suspense:unmatched"

# kind -> (side, guarded)
KIND_RULES: dict[LedgerKind, tuple[Side, bool]] = {
    LedgerKind.bank_clearing: (Side.debit, False),
    LedgerKind.supervised: (Side.debit, True),  # the bank account cannot be overdrawn
    LedgerKind.contract: (Side.credit, True),
    LedgerKind.developer_payouts: (Side.debit, True),
    LedgerKind.buyer_refunds: (Side.credit, True),
    LedgerKind.seller_payouts: (Side.credit, True),
    LedgerKind.suspense: (Side.credit, True),
}


@dataclass(frozen=True)
class Posting:
    debit: uuid.UUID
    credit: uuid.UUID
    amount_fen: int
    kind: str
    bank_event_id: uuid.UUID | None = None
    notice_id: uuid.UUID | None = None
    instruction_id: uuid.UUID | None = None
    corrects: uuid.UUID | None = None
    note: str = ""


def account_code(kind: LedgerKind, owner: uuid.UUID | None = None) -> str:
    return kind.value if owner is None else f"{kind.value}:{owner}"


async def ensure_account(
    session: AsyncSession,
    kind: LedgerKind,
    *,
    now: datetime,
    code: str | None = None,
    supervised_account_id: uuid.UUID | None = None,
    contract_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """The id of the account with this code, created if missing (race-safe)."""
    code = code or account_code(kind, contract_id or supervised_account_id)
    found = await session.scalar(select(LedgerAccount.id).where(LedgerAccount.code == code))
    if found is not None:
        return found
    side, guarded = KIND_RULES[kind]
    await session.execute(
        insert_into(session, LedgerAccount)
        .values(
            id=uuid.uuid4(),
            code=code,
            kind=kind,
            side=side,
            guarded=guarded,
            supervised_account_id=supervised_account_id,
            contract_id=contract_id,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["code"])
    )
    found = await session.scalar(select(LedgerAccount.id).where(LedgerAccount.code == code))
    assert found is not None
    return found


async def nets(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """debits - credits per account (0 for an account without transfers)."""
    result = dict.fromkeys(ids, 0)
    if not ids:
        return result
    debits = await session.execute(
        select(Transfer.debit_account_id, func.sum(Transfer.amount_fen))
        .where(Transfer.debit_account_id.in_(ids))
        .group_by(Transfer.debit_account_id)
    )
    for account_id, total in debits:
        result[account_id] += int(total)
    credits = await session.execute(
        select(Transfer.credit_account_id, func.sum(Transfer.amount_fen))
        .where(Transfer.credit_account_id.in_(ids))
        .group_by(Transfer.credit_account_id)
    )
    for account_id, total in credits:
        result[account_id] -= int(total)
    return result


async def balances(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Balances on each account's own side."""
    if not ids:
        return {}
    sides = dict(
        (
            await session.execute(
                select(LedgerAccount.id, LedgerAccount.side).where(LedgerAccount.id.in_(ids))
            )
        ).all()
    )
    raw = await nets(session, ids)
    return {i: raw[i] if sides[i] is Side.debit else -raw[i] for i in ids}


async def balance(session: AsyncSession, account_id: uuid.UUID) -> int:
    return (await balances(session, [account_id]))[account_id]


async def _lock(session: AsyncSession, ids: list[uuid.UUID]) -> list[LedgerAccount]:
    statement = (
        select(LedgerAccount).where(LedgerAccount.id.in_(sorted(ids))).order_by(LedgerAccount.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return list(await session.scalars(statement))


async def post(session: AsyncSession, postings: list[Posting], *, now: datetime) -> list[uuid.UUID]:
    """Post transfers atomically (in the caller's transaction) or refuse them all."""
    ids = sorted({p.debit for p in postings} | {p.credit for p in postings})
    accounts = {a.id: a for a in await _lock(session, ids)}
    if len(accounts) != len(ids):
        raise ValueError("posting to an unknown ledger account")
    moves: dict[uuid.UUID, int] = dict.fromkeys(ids, 0)
    for p in postings:
        if p.amount_fen <= 0 or p.debit == p.credit:
            raise ValueError("a transfer moves a positive amount between two accounts")
        moves[p.debit] += p.amount_fen
        moves[p.credit] -= p.amount_fen

    def own_side(account_id: uuid.UUID, net: int) -> int:
        return net if accounts[account_id].side is Side.debit else -net

    # Only a guarded account that these postings lower can fall below zero: its balance is
    # summed from its transfers; the others' are not (a supervised account's thousands of
    # payments were summed again for every new payment).
    lowered = [i for i in ids if accounts[i].guarded and own_side(i, moves[i]) < 0]
    current = await nets(session, lowered)
    for account_id in lowered:
        own = own_side(account_id, current[account_id] + moves[account_id])
        account = accounts[account_id]
        if own < 0:
            raise DomainError(
                "ledger_guard",
                "该资金账户余额不足，操作被拒绝。",
                account=account.code,
                shortfall_fen=-own,
            )
    rows = [
        {
            "id": uuid.uuid4(),
            "debit_account_id": p.debit,
            "credit_account_id": p.credit,
            "amount_fen": p.amount_fen,
            "kind": p.kind,
            "bank_event_id": p.bank_event_id,
            "notice_id": p.notice_id,
            "instruction_id": p.instruction_id,
            "corrects_transfer_id": p.corrects,
            "note": p.note[:200],
            "created_at": now,
        }
        for p in postings
    ]
    # One INSERT for all (a group of bank payments posts dozens), not the unit of work's
    # bookkeeping per object; nothing reads the transfers back from the session.
    await session.execute(insert(Transfer.__table__), rows)
    return [row["id"] for row in rows]


async def all_balances(session: AsyncSession) -> list[tuple[LedgerAccount, int]]:
    """Every account with its balance on its own side (for checks and reconciliation)."""
    accounts = list(await session.scalars(select(LedgerAccount).order_by(LedgerAccount.code)))
    values = await balances(session, [a.id for a in accounts])
    return [(a, values[a.id]) for a in accounts]
