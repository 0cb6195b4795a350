"""The bank's daily statement file (对账文件) against our record of the bank's events.

Banks each have their own file layout; this one is ours, documented for the bank's
integration (and easy to produce from any of theirs): UTF-8 CSV (a BOM is allowed) with
the header ``date,transaction_id,account_number,direction,amount,reference`` and one
booked line per row: the Shanghai business date (``2026-11-23``), the bank's transaction
id (the one its webhooks carry), the supervised account, ``credit`` (money in) or
``debit`` (money out), the amount in yuan with at most two decimals (``300000.00``), and
the payment reference (notice reference or our instruction id).

Every difference is reported: lines the ledger lacks, bank events the statement lacks
(for the accounts and days the statement covers), and lines whose account, direction or
amount differ from the event we booked. Malformed rows are reported by number.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.escrow.models import BankEvent
from signing.pii import mask_account

HEADER = ["date", "transaction_id", "account_number", "direction", "amount", "reference"]
SHANGHAI = timezone(timedelta(hours=8))
MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class StatementLine:
    row: int
    day: date
    transaction_id: str
    account_number: str
    direction: str  # credit | debit
    amount_fen: int
    reference: str


def _fen(raw: str) -> int:
    amount = Decimal(raw.strip())
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise InvalidOperation(raw)
    return int(amount * 100)


def parse_statement(raw: bytes) -> tuple[list[StatementLine], list[str]]:
    """The lines of a statement file and the problems of the rows that are not lines."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], ["文件不是 UTF-8 编码的 CSV。"]
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    if header != HEADER:
        return [], [f"表头应为 {','.join(HEADER)}，实为 {','.join(header)}。"]
    lines: list[StatementLine] = []
    problems: list[str] = []
    for number, row in enumerate(reader, start=2):
        if number > MAX_ROWS:
            problems.append(f"超过 {MAX_ROWS} 行，其余未读。")
            break
        if not any(cell.strip() for cell in row):
            continue
        try:
            day, txn, account, direction, amount, reference = (cell.strip() for cell in row)
            if direction not in ("credit", "debit") or not txn or not account:
                raise ValueError(direction)
            lines.append(StatementLine(number, date.fromisoformat(day), txn, account, direction,
                                       _fen(amount), reference))
        except (ValueError, InvalidOperation):
            problems.append(f"第 {number} 行格式不正确：{','.join(row)[:200]}")
    return lines, problems


def _direction(event: BankEvent) -> str:
    return "credit" if event.event_type == "payment.received" else "debit"


async def compare_statement(session: AsyncSession, lines: list[StatementLine]) -> list[str]:
    """Every difference between the statement lines and the bank events we booked."""
    differences: list[str] = []
    by_txn: dict[str, StatementLine] = {}
    for line in lines:
        if line.transaction_id in by_txn:
            differences.append(f"第 {line.row} 行：银行流水号 {line.transaction_id} 重复出现")
        by_txn[line.transaction_id] = line
    if not lines:
        return differences
    events = {e.txn_id: e for e in await session.scalars(
        select(BankEvent).where(BankEvent.txn_id.in_(list(by_txn)))
    )}
    for txn, line in by_txn.items():
        event = events.get(txn)
        where = f"第 {line.row} 行 {txn}"
        if event is None:
            differences.append(f"{where}：银行有此笔 {line.amount_fen} 分，网签账本没有")
            continue
        for what, ours, theirs in (
            ("账号", event.account_number, line.account_number),
            ("方向", _direction(event), line.direction),
            ("金额（分）", event.amount_fen, line.amount_fen),
        ):
            if ours != theirs:
                differences.append(f"{where}：{what}不一致，银行 {theirs}，网签 {ours}")
    days = {line.day for line in lines}
    accounts = {line.account_number for line in lines}
    first, last = min(days), max(days)
    recorded = await session.scalars(
        select(BankEvent).where(
            BankEvent.account_number.in_(list(accounts)),
            BankEvent.received_at >= datetime.combine(first, time.min, SHANGHAI),
            BankEvent.received_at < datetime.combine(last + timedelta(days=1), time.min, SHANGHAI),
        )
    )
    for event in recorded:
        day = event.received_at.astimezone(SHANGHAI).date()
        if event.txn_id not in by_txn:
            differences.append(
                f"{event.txn_id}（{day}，{mask_account(event.account_number)}）：网签账本有此笔 "
                f"{event.amount_fen} 分，银行对账文件没有"
            )
    return differences
