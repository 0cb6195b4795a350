"""Payment instructions to the bank: the refund of everything a cancelled contract still
holds, and releases to the developer (一般资金支取), which a regulator approves only while
what stays is at least the key supervised amount of the milestone.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.escrow import ledger, schemas
from api.escrow.accounts import figures, lock_account
from api.escrow.bank_gateway import queue_instruction
from api.escrow.ledger import Posting
from api.escrow.models import (
    AccountStatus,
    EscrowContract,
    Instruction,
    InstructionKind,
    InstructionStatus,
    LedgerKind,
    SupervisedAccount,
)
from api.identity.principal import Principal


async def request_refund(
    session: AsyncSession,
    *,
    contract_id: uuid.UUID,
    now: datetime,
    requested_by: uuid.UUID | None = None,
) -> Instruction | None:
    """Called by contracts when a contract is cancelled: instruct the bank to refund all the
    contract still holds (what was paid, overpayments included). None if nothing is held.
    The money is reserved at once (contract -> buyer_refunds) so it cannot be released."""
    contract = await session.get(EscrowContract, contract_id)
    if contract is None:
        return None
    held = await ledger.balance(session, contract.ledger_account_id)
    if held <= 0:
        return None
    refunds = await ledger.ensure_account(
        session,
        LedgerKind.buyer_refunds,
        supervised_account_id=contract.supervised_account_id,
        now=now,
    )
    instruction = Instruction(
        id=uuid.uuid4(),
        kind=InstructionKind.refund,
        supervised_account_id=contract.supervised_account_id,
        contract_id=contract_id,
        amount_fen=held,
        milestone="",
        status=InstructionStatus.approved,
        requested_by=requested_by,
        requested_at=now,
        reviewed_by=None,
        reviewed_at=now,
        reason="合同解除退款",
        bank_event_id=None,
        completed_at=None,
    )
    session.add(instruction)
    await session.flush()
    await ledger.post(
        session,
        [
            Posting(
                contract.ledger_account_id,
                refunds,
                held,
                "refund_reserved",
                instruction_id=instruction.id,
            )
        ],
        now=now,
    )
    await queue_instruction(session, instruction.id, now=now)  # to the bank's gateway
    return instruction


def _key_amount(account: SupervisedAccount, milestone: str) -> int:
    for m in account.milestones:
        if m["code"] == milestone:
            return int(m["key_amount_fen"])
    raise DomainError(
        "milestone_unknown",
        "该监管账户没有这个工程进度节点。",
        milestones=[m["code"] for m in account.milestones],
    )


async def _check_release_limit(
    session: AsyncSession, account: SupervisedAccount, amount: int, milestone: str, now: datetime
) -> None:
    key_amount = _key_amount(account, milestone)
    available = (await figures(session, account.id, now=now)).available_for_release_fen
    if available - amount < key_amount:
        raise DomainError(
            "release_exceeds_limit",
            "支取后账户余额将低于该工程节点的重点监管资金，不予支取。",
            available_fen=available,
            key_amount_fen=key_amount,
            releasable_fen=max(available - key_amount, 0),
        )


async def request_release(
    session: AsyncSession,
    principal: Principal,
    account_id: uuid.UUID,
    *,
    amount_fen: int,
    milestone: str,
    note: str = "",
    now: datetime,
) -> Instruction:
    """The developer asks for a general release (一般资金支取); one open request at a time."""
    account = await lock_account(session, account_id)
    if account is None or account.company_id != principal.company_id:
        raise DomainError.not_found("监管账户")
    if account.status is not AccountStatus.approved:
        raise DomainError("account_not_approved", "监管账户尚未审核通过。")
    open_release = await session.scalar(
        select(Instruction.id).where(
            Instruction.supervised_account_id == account_id,
            Instruction.kind == InstructionKind.release,
            Instruction.status.in_([InstructionStatus.requested, InstructionStatus.approved]),
        )
    )
    if open_release is not None:
        raise DomainError("release_in_progress", "该监管账户有正在办理的支取业务，不能同时再发起。")
    await _check_release_limit(session, account, amount_fen, milestone, now)
    instruction = Instruction(
        id=uuid.uuid4(),
        kind=InstructionKind.release,
        supervised_account_id=account_id,
        contract_id=None,
        amount_fen=amount_fen,
        milestone=milestone,
        status=InstructionStatus.requested,
        requested_by=principal.staff_id,
        requested_at=now,
        reviewed_by=None,
        reviewed_at=None,
        reason=note.strip(),
        bank_event_id=None,
        completed_at=None,
    )
    session.add(instruction)
    await session.flush()
    return instruction


async def review_release(
    session: AsyncSession,
    principal: Principal,
    instruction_id: uuid.UUID,
    *,
    approve: bool,
    reason: str,
    now: datetime,
) -> Instruction:
    """A regulator approves (the limit is checked again, under the account lock) or rejects
    with a reason."""
    instruction = await session.get(Instruction, instruction_id)
    if instruction is None or instruction.kind is not InstructionKind.release:
        raise DomainError.not_found("支取申请")
    account = await lock_account(session, instruction.supervised_account_id)
    assert account is not None
    await session.refresh(instruction)
    if instruction.status is not InstructionStatus.requested:
        raise DomainError("release_already_reviewed", "该支取申请已审核。")
    if not approve and not reason.strip():
        raise DomainError("reason_required", "驳回时须填写理由。")
    if approve:
        await _check_release_limit(
            session, account, instruction.amount_fen, instruction.milestone, now
        )
    instruction.status = InstructionStatus.approved if approve else InstructionStatus.rejected
    instruction.reviewed_by = principal.staff_id
    instruction.reviewed_at = now
    instruction.reason = reason.strip() or instruction.reason
    await session.flush()
    if approve:
        await queue_instruction(session, instruction.id, now=now)  # to the bank's gateway
    return instruction


def instruction_answer(i: Instruction) -> schemas.InstructionAnswer:
    return schemas.InstructionAnswer(
        id=i.id,
        kind=i.kind.value,
        supervised_account_id=i.supervised_account_id,
        contract_id=i.contract_id,
        amount_fen=i.amount_fen,
        milestone=i.milestone,
        status=i.status.value,
        requested_at=i.requested_at,
        reviewed_at=i.reviewed_at,
        reason=i.reason,
        completed_at=i.completed_at,
    )
