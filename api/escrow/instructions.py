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
from api.escrow.bank_gateway import queue_instruction, withdraw_unsent
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
    instruction = await _pay_out_everything(
        session,
        contract_id,
        InstructionKind.refund,
        reason="合同解除退款",
        requested_by=requested_by,
        now=now,
    )
    if instruction is not None:
        await _releases_yield_to_refunds(session, instruction.supervised_account_id, now=now)
    return instruction


async def pay_sellers(
    session: AsyncSession, *, contract_id: uuid.UUID, requested_by: uuid.UUID | None, now: datetime
) -> Instruction | None:
    """Called by contracts when a resale's transfer is registered (转移登记完成): instruct the
    bank to pay everything the contract holds to the sellers' account. None if nothing is
    held. Reserved at once (contract -> seller_payouts), like a refund."""
    return await _pay_out_everything(
        session,
        contract_id,
        InstructionKind.payout,
        reason="转移登记完成，交易资金划转出卖人",
        requested_by=requested_by,
        now=now,
    )


_RESERVES = {
    InstructionKind.refund: (LedgerKind.buyer_refunds, "refund_reserved"),
    InstructionKind.payout: (LedgerKind.seller_payouts, "payout_reserved"),
}


async def _pay_out_everything(
    session: AsyncSession,
    contract_id: uuid.UUID,
    kind: InstructionKind,
    *,
    reason: str,
    requested_by: uuid.UUID | None,
    now: datetime,
) -> Instruction | None:
    """An approved instruction for all a contract holds, the money reserved for it."""
    contract = await session.get(EscrowContract, contract_id)
    if contract is None:
        return None
    await lock_account(session, contract.supervised_account_id)
    held = await ledger.balance(session, contract.ledger_account_id)
    if held <= 0:
        return None
    reserve_kind, posting_kind = _RESERVES[kind]
    reserve = await ledger.ensure_account(
        session, reserve_kind, supervised_account_id=contract.supervised_account_id, now=now
    )
    instruction = Instruction(
        id=uuid.uuid4(),
        kind=kind,
        supervised_account_id=contract.supervised_account_id,
        contract_id=contract_id,
        amount_fen=held,
        milestone="",
        status=InstructionStatus.approved,
        requested_by=requested_by,
        requested_at=now,
        reviewed_by=None,
        reviewed_at=now,
        reason=reason,
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
                reserve,
                held,
                posting_kind,
                instruction_id=instruction.id,
            )
        ],
        now=now,
    )
    await queue_instruction(session, instruction.id, now=now)  # to the bank's gateway
    return instruction


async def _releases_yield_to_refunds(
    session: AsyncSession, account_id: uuid.UUID, *, now: datetime
) -> None:
    """A release approved but not executed yet never takes money reserved for refunds: when
    a refund leaves less than the approved releases would take, the newest of them that
    were never sent to the bank are withdrawn (rejected, with the reason) until what stays
    covers the refunds. One the bank may already hold stands: only the bank can stop it,
    and the refund waits for the money it leaves (reconciliation shows the shortfall)."""
    shortfall = -(await figures(session, account_id, now=now)).available_for_release_fen
    if shortfall <= 0:
        return
    approved = await session.scalars(
        select(Instruction)
        .where(
            Instruction.supervised_account_id == account_id,
            Instruction.kind == InstructionKind.release,
            Instruction.status == InstructionStatus.approved,
        )
        .order_by(Instruction.reviewed_at.desc(), Instruction.id)
    )
    for release in approved:
        if shortfall <= 0:
            break
        if not await withdraw_unsent(session, release.id):
            continue
        release.status = InstructionStatus.rejected
        release.reason = "退房退款优先，支取已撤销"
        release.reviewed_at = now
        shortfall -= release.amount_fen
    await session.flush()


def _key_amount(account: SupervisedAccount, milestone: str) -> int:
    """The milestone's key amount: computed from the regulator's rate per m² when it was
    set (``accounts.set_key_rate``), or fixed on accounts registered before shares."""
    for m in account.milestones:
        if m["code"] == milestone:
            if m.get("key_amount_fen") is None:
                raise DomainError(
                    "key_rate_not_set",
                    "主管部门尚未核定该项目每平方米的重点监管资金，暂不能支取。",
                )
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
