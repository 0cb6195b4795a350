"""The bank's signed events, applied exactly once per bank transaction id: payments in
(matched to a notice by its reference, or held in suspense), refunds and releases the bank
completed; and a regulator matching a suspense payment to its notice.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import insert_into
from api.escrow import ledger, schemas
from api.escrow.accounts import ensure_account_ledgers, lock_account
from api.escrow.instructions import request_refund
from api.escrow.ledger import Posting
from api.escrow.models import (
    AccountScope,
    BankEvent,
    EscrowContract,
    Instruction,
    InstructionKind,
    InstructionStatus,
    LedgerAccount,
    LedgerKind,
    PaymentNotice,
    SupervisedAccount,
    Transfer,
)
from api.escrow.notices import arrived_sms, notify_buyers, paid_by_notice

log = logging.getLogger("wangqian.escrow")


def fingerprint_of(event: schemas.BankWebhook) -> str:
    return hashlib.sha256(
        msgspec.json.encode({"type": event.type, "data": event.data}, order="sorted")
    ).hexdigest()


def decode_event(body: bytes) -> schemas.BankWebhook:
    try:
        return msgspec.json.decode(body, type=schemas.BankWebhook)
    except msgspec.DecodeError as error:
        raise DomainError(
            "bank_event_invalid", "银行回调内容不符合协议。", error=str(error)
        ) from None


async def ingest_bank_event(
    session: AsyncSession, keys: ServiceKeys, *, body: bytes, now: datetime
) -> schemas.WebhookAnswer:
    """Apply one (already authenticated) bank event, exactly once per bank transaction id."""
    event = decode_event(body)
    data = event.data
    fingerprint = fingerprint_of(event)
    event_id = await session.scalar(
        insert_into(session, BankEvent)
        .values(
            id=uuid.uuid4(),
            txn_id=data.transaction_id,
            event_type=event.type,
            fingerprint=fingerprint,
            amount_fen=data.amount_fen,
            account_number=data.account_number,
            reference=data.reference or data.instruction_id,
            outcome="pending",
            body=body.decode("utf-8", "replace"),
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["txn_id"])
        .returning(BankEvent.id)
    )
    if event_id is None:
        seen = await session.scalar(
            select(BankEvent).where(BankEvent.txn_id == data.transaction_id)
        )
        assert seen is not None
        if seen.fingerprint != fingerprint:
            raise replayed_differently(data, seen.amount_fen)
        return schemas.WebhookAnswer(
            received=True, duplicate=True, transaction_id=data.transaction_id, outcome=seen.outcome
        )
    if event.type == "payment.received":
        outcome = await apply_payment(session, keys, event_id, data, now=now)
    else:
        outcome = await _apply_instruction(session, keys, event_id, event.type, data, now=now)
    stored = await session.get(BankEvent, event_id)
    assert stored is not None
    stored.outcome = outcome
    await session.flush()
    return schemas.WebhookAnswer(
        received=True, duplicate=False, transaction_id=data.transaction_id, outcome=outcome
    )


def replayed_differently(data: schemas.BankEventData, stored_amount_fen: int) -> DomainError:
    log.warning(
        "bank transaction %s replayed with different content (amount %s, was %s)",
        data.transaction_id,
        data.amount_fen,
        stored_amount_fen,
    )
    return DomainError(
        "bank_txn_conflict",
        "该银行流水号已以不同内容入账，拒绝处理。",
        transaction_id=data.transaction_id,
    )


async def apply_payment(
    session: AsyncSession,
    keys: ServiceKeys,
    event_id: uuid.UUID,
    data: schemas.BankEventData,
    *,
    now: datetime,
) -> str:
    account = await session.scalar(
        select(SupervisedAccount).where(SupervisedAccount.account_number == data.account_number)
    )
    notice = (
        await session.scalar(
            select(PaymentNotice).where(PaymentNotice.reference == data.reference.strip().upper())
        )
        if data.reference.strip()
        else None
    )
    contract = await session.get(EscrowContract, notice.contract_id) if notice else None
    if account is None:
        clearing = await ledger.ensure_account(
            session, LedgerKind.bank_clearing, code=ledger.CLEARING, now=now
        )
        suspense = await ledger.ensure_account(
            session, LedgerKind.suspense, code=ledger.GLOBAL_SUSPENSE, now=now
        )
        await ledger.post(
            session,
            [Posting(clearing, suspense, data.amount_fen, "suspense", bank_event_id=event_id)],
            now=now,
        )
        log.warning("bank payment %s into an unknown account: suspense", data.transaction_id)
        return "suspense"
    ids = await ensure_account_ledgers(session, account.id, now=now)
    if notice is None or contract is None or contract.supervised_account_id != account.id:
        await ledger.post(
            session,
            [
                Posting(
                    ids[LedgerKind.supervised],
                    ids[LedgerKind.suspense],
                    data.amount_fen,
                    "suspense",
                    bank_event_id=event_id,
                    note=data.reference[:100],
                )
            ],
            now=now,
        )
        log.warning("bank payment %s with unknown reference: suspense", data.transaction_id)
        return "suspense"
    await ledger.post(
        session,
        [
            Posting(
                ids[LedgerKind.supervised],
                contract.ledger_account_id,
                data.amount_fen,
                "payment",
                bank_event_id=event_id,
                notice_id=notice.id,
            )
        ],
        now=now,
    )
    if contract.cancelled_at is not None:
        # Money on its way when the contract was cancelled goes back, never onwards.
        await request_refund(session, contract_id=contract.contract_id, now=now)
        return "refunded"
    await arrived_sms(
        session, keys, contract, notice, data.transaction_id, data.amount_fen, now=now
    )
    paid = (await paid_by_notice(session, [notice.id]))[notice.id]
    return "overpaid" if paid > notice.due_fen else "applied"


# Where the money an instruction pays out waits until the bank confirms it.
_PAID_FROM = {
    InstructionKind.refund: LedgerKind.buyer_refunds,
    InstructionKind.release: LedgerKind.developer_payouts,
    InstructionKind.payout: LedgerKind.seller_payouts,
}


async def _apply_instruction(
    session: AsyncSession,
    keys: ServiceKeys,
    event_id: uuid.UUID,
    event_type: str,
    data: schemas.BankEventData,
    *,
    now: datetime,
) -> str:
    kind = InstructionKind(event_type.removesuffix(".completed"))
    try:
        instruction_id = uuid.UUID(data.instruction_id)
    except ValueError:
        instruction_id = None
    instruction = await session.get(Instruction, instruction_id) if instruction_id else None
    if instruction is None or instruction.kind is not kind:
        raise DomainError("bank_instruction_unknown", "银行回调所指的支付指令不存在。")
    account = await lock_account(session, instruction.supervised_account_id)
    assert account is not None
    await session.refresh(instruction)
    if account.account_number != data.account_number or instruction.amount_fen != data.amount_fen:
        log.warning("bank %s for instruction %s does not match it", event_type, instruction.id)
        raise DomainError("bank_instruction_mismatch", "银行回调的账号或金额与支付指令不符。")
    if instruction.status is not InstructionStatus.approved:
        raise DomainError("bank_instruction_not_open", "该支付指令不在待执行状态。")
    ids = await ensure_account_ledgers(session, account.id, now=now)
    source = _PAID_FROM[kind]
    await ledger.post(
        session,
        [
            Posting(
                ids[source],
                ids[LedgerKind.supervised],
                data.amount_fen,
                f"{kind.value}_paid",
                bank_event_id=event_id,
                instruction_id=instruction.id,
            )
        ],
        now=now,
    )
    instruction.status = InstructionStatus.completed
    instruction.completed_at = now
    instruction.bank_event_id = event_id
    if kind is not InstructionKind.release and instruction.contract_id is not None:
        contract = await session.get(EscrowContract, instruction.contract_id)
        assert contract is not None
        resale = account.scope is AccountScope.resale
        template, done = {
            InstructionKind.refund: (
                "resale_refund_completed" if resale else "refund_completed",
                "refunded",
            ),
            InstructionKind.payout: ("seller_paid", "paid"),
        }[kind]
        await notify_buyers(
            session,
            keys,
            contract,
            template=template,
            params={"contract_number": contract.contract_number, "amount_fen": data.amount_fen},
            event_key=f"{data.transaction_id}:{done}",
            now=now,
        )
    return "applied"


async def assign_suspense(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    transfer_id: uuid.UUID,
    notice_id: uuid.UUID,
    now: datetime,
) -> EscrowContract:
    """A regulator matches a suspense payment to its notice: a correcting transfer
    suspense:S -> contract:C (the original stays), at most once per suspense payment."""
    original = await session.get(Transfer, transfer_id)
    if original is None or original.kind != "suspense":
        raise DomainError.not_found("挂账款项")
    suspense = await session.get(LedgerAccount, original.credit_account_id)
    assert suspense is not None
    notice = await session.get(PaymentNotice, notice_id)
    if notice is None:
        raise DomainError.not_found("缴款通知")
    contract = await session.get(EscrowContract, notice.contract_id)
    assert contract is not None
    if suspense.supervised_account_id != contract.supervised_account_id:
        raise DomainError("suspense_account_mismatch", "该挂账款项不在此缴款通知的监管账户中。")
    done = await session.scalar(
        select(Transfer.id).where(Transfer.corrects_transfer_id == original.id)
    )
    if done is not None:
        raise DomainError("suspense_already_assigned", "该挂账款项已匹配过。")
    await ledger.post(
        session,
        [
            Posting(
                suspense.id,
                contract.ledger_account_id,
                original.amount_fen,
                "suspense_assigned",
                notice_id=notice.id,
                corrects=original.id,
            )
        ],
        now=now,
    )
    if contract.cancelled_at is not None:
        await request_refund(session, contract_id=contract.contract_id, now=now)
        return contract
    event = await session.get(BankEvent, original.bank_event_id)
    assert event is not None
    await arrived_sms(session, keys, contract, notice, event.txn_id, original.amount_fen, now=now)
    return contract
