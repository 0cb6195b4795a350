"""Escrow rules: supervised accounts, payment notices, bank events, releases, refunds.

The contracts context calls ``create_payment_notices`` when a contract completes and
``request_refund`` when one is cancelled; escrow never reads contract tables.

Ledger flows (see ``api.escrow.ledger``; S = a supervised account, C = a contract):

- payment for a notice of C into S:   Dr supervised:S      Cr contract:C
- payment nobody can match, into S:   Dr supervised:S      Cr suspense:S
- payment into an unknown account:    Dr bank_clearing     Cr suspense:unmatched
- refund instructed on cancellation:  Dr contract:C        Cr buyer_refunds:S
- refund confirmed by the bank:       Dr buyer_refunds:S   Cr supervised:S
- release confirmed by the bank:      Dr developer_payouts:S  Cr supervised:S

supervised:S is the bank balance of S; it can never go below zero, and a release is only
approved while what stays is at least the key supervised amount of its milestone.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import msgspec
from sqlalchemy import func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.escrow import ledger, schemas
from api.escrow.ledger import Posting
from api.escrow.models import (
    AccountStatus,
    BankEvent,
    EscrowContract,
    Instruction,
    InstructionKind,
    InstructionStatus,
    LedgerAccount,
    LedgerKind,
    NoticeKind,
    PaymentNotice,
    Side,
    SupervisedAccount,
    Transfer,
)
from api.identity.models import PrincipalKind, StaffRole
from api.identity.service import Principal
from api.outbox import service as outbox
from signing.pii import mask_account

log = logging.getLogger("wangqian.escrow")

BUYERS_FIELD = "escrow.buyers"
PAID_KINDS = ("payment", "suspense_assigned")  # what counts as paid on a notice
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud at a bank


@dataclass(frozen=True)
class NoticePayee:
    """A buyer who gets the payment notice and the "arrived" SMS."""

    phone: str
    name: str


# ------------------------------------------------------------------ access


def is_regulator(principal: Principal) -> bool:
    return principal.kind is PrincipalKind.staff and principal.role is StaffRole.regulator


def can_read_company(principal: Principal, company_id: uuid.UUID) -> bool:
    """Staff of the company, or a regulator."""
    return is_regulator(principal) or (
        principal.kind is PrincipalKind.staff and principal.company_id == company_id
    )


def _not_found(what: str) -> DomainError:
    return DomainError.not_found(what)


# ------------------------------------------------------------------ supervised accounts


async def create_supervised_account(
    session: AsyncSession,
    principal: Principal,
    data: schemas.NewSupervisedAccount,
    *,
    project_company_id: uuid.UUID | None,
    now: datetime,
) -> SupervisedAccount:
    """A company admin registers a supervised account for one of the company's projects."""
    if project_company_id is None or project_company_id != principal.company_id:
        raise _not_found("项目")
    codes = [m.code for m in data.milestones]
    if len(set(codes)) != len(codes):
        raise DomainError("milestone_duplicate", "工程进度节点编码不能重复。")
    taken = await session.scalar(
        select(SupervisedAccount.id).where(SupervisedAccount.account_number == data.account_number)
    )
    if taken is not None:
        raise DomainError("account_number_taken", "该监管账号已登记。")
    account = SupervisedAccount(
        id=uuid.uuid4(),
        company_id=project_company_id,
        project_id=data.project_id,
        bank_name=data.bank_name.strip(),
        account_name=data.account_name.strip(),
        account_number=data.account_number,
        milestones=[msgspec.to_builtins(m) for m in data.milestones],
        status=AccountStatus.pending,
        created_by=principal.staff_id,
        created_at=now,
        reviewed_by=None,
        reviewed_at=None,
        review_reason="",
    )
    session.add(account)
    await session.flush()
    return account


async def review_account(
    session: AsyncSession,
    principal: Principal,
    account_id: uuid.UUID,
    *,
    approve: bool,
    reason: str,
    now: datetime,
) -> SupervisedAccount:
    account = await session.get(SupervisedAccount, account_id)
    if account is None:
        raise _not_found("监管账户")
    if account.status is not AccountStatus.pending:
        raise DomainError("account_already_reviewed", "该监管账户已审核。")
    if not approve and not reason.strip():
        raise DomainError("reason_required", "驳回时须填写理由。")
    if approve:
        other = await approved_account_for_project(session, account.project_id)
        if other is not None:
            raise DomainError("project_has_account", "该项目已有生效的监管账户。")
    account.status = AccountStatus.approved if approve else AccountStatus.rejected
    account.reviewed_by = principal.staff_id
    account.reviewed_at = now
    account.review_reason = reason.strip()
    if approve:
        await ensure_account_ledgers(session, account.id, now=now)
    await session.flush()
    return account


async def ensure_account_ledgers(
    session: AsyncSession, supervised_account_id: uuid.UUID, *, now: datetime
) -> dict[LedgerKind, uuid.UUID]:
    kinds = [
        LedgerKind.supervised,
        LedgerKind.developer_payouts,
        LedgerKind.buyer_refunds,
        LedgerKind.suspense,
    ]
    codes = {ledger.account_code(kind, supervised_account_id): kind for kind in kinds}
    found = {
        codes[code]: account_id
        for code, account_id in await session.execute(
            select(LedgerAccount.code, LedgerAccount.id).where(LedgerAccount.code.in_(codes))
        )
    }
    for kind in kinds:
        if kind not in found:
            found[kind] = await ledger.ensure_account(
                session, kind, supervised_account_id=supervised_account_id, now=now
            )
    return found


async def approved_account_for_project(
    session: AsyncSession, project_id: uuid.UUID
) -> SupervisedAccount | None:
    return await session.scalar(
        select(SupervisedAccount)
        .where(
            SupervisedAccount.project_id == project_id,
            SupervisedAccount.status == AccountStatus.approved,
        )
        .order_by(SupervisedAccount.reviewed_at.desc())
        .limit(1)
    )


async def list_accounts(session: AsyncSession, principal: Principal) -> list[SupervisedAccount]:
    statement = select(SupervisedAccount).order_by(SupervisedAccount.created_at)
    if not is_regulator(principal):
        statement = statement.where(SupervisedAccount.company_id == principal.company_id)
    return list(await session.scalars(statement))


async def readable_account(
    session: AsyncSession, principal: Principal, account_id: uuid.UUID
) -> SupervisedAccount:
    account = await session.get(SupervisedAccount, account_id)
    if account is None or not can_read_company(principal, account.company_id):
        raise _not_found("监管账户")
    return account


def account_answer(account: SupervisedAccount) -> schemas.SupervisedAccountAnswer:
    return schemas.SupervisedAccountAnswer(
        id=account.id,
        company_id=account.company_id,
        project_id=account.project_id,
        bank_name=account.bank_name,
        account_name=account.account_name,
        account_number_masked=mask_account(account.account_number),
        milestones=[msgspec.convert(m, schemas.MilestoneAnswer) for m in account.milestones],
        status=account.status.value,
        created_at=account.created_at,
        reviewed_at=account.reviewed_at,
        review_reason=account.review_reason,
    )


DEMO_ACCOUNT_NUMBER = "6222020200112233445"
DEMO_MILESTONES = [
    {"code": "foundation", "name": "基础完成", "key_amount_fen": 50_000_000},
    {"code": "topped_out", "name": "主体封顶", "key_amount_fen": 20_000_000},
    {"code": "completed", "name": "竣工验收", "key_amount_fen": 0},
]


async def ensure_demo_account(
    session: AsyncSession, *, project_id: uuid.UUID, company_id: uuid.UUID, now: datetime
) -> SupervisedAccount:
    """The demo world's approved supervised account (for ``api.demo``); reused if present."""
    existing = await approved_account_for_project(session, project_id)
    if existing is not None:
        return existing
    platform = uuid.UUID(int=0)
    account = SupervisedAccount(
        id=uuid.uuid4(),
        company_id=company_id,
        project_id=project_id,
        bank_name="示范银行明湖支行",
        account_name="示范市明湖置业有限公司预售资金监管专户",
        account_number=DEMO_ACCOUNT_NUMBER,
        milestones=DEMO_MILESTONES,
        status=AccountStatus.approved,
        created_by=platform,
        created_at=now,
        reviewed_by=platform,
        reviewed_at=now,
        review_reason="演示数据",
    )
    session.add(account)
    await session.flush()
    await ensure_account_ledgers(session, account.id, now=now)
    return account


# ------------------------------------------------------------------ payment notices


def new_reference() -> str:
    return "WQ" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(12))


async def create_payment_notices(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    contract_id: uuid.UUID,
    contract_number: str,
    project_id: uuid.UUID,
    company_id: uuid.UUID,
    buyers: list[NoticePayee],
    deposit_fen: int,
    down_payment_fen: int,
    estate: str,
    building: str,
    room: str,
    now: datetime,
) -> list[PaymentNotice]:
    """Called by contracts when a contract completes: notices for the deposit and the down
    payment (each only when above zero) into the project's approved supervised account.
    Calling it again for the same contract returns the notices made the first time."""
    existing = await session.get(EscrowContract, contract_id)
    if existing is not None:
        return await notices_of(session, contract_id)
    if deposit_fen < 0 or down_payment_fen < 0:
        raise ValueError("amounts due cannot be negative")
    account = await approved_account_for_project(session, project_id)
    if account is None:
        raise DomainError("supervised_account_missing", "该项目尚无经审核的预售资金监管账户。")
    ledger_id = await ledger.ensure_account(
        session,
        LedgerKind.contract,
        contract_id=contract_id,
        supervised_account_id=account.id,
        now=now,
    )
    await ensure_account_ledgers(session, account.id, now=now)
    buyers_json = msgspec.json.encode([{"phone": b.phone, "name": b.name} for b in buyers])
    session.add(
        EscrowContract(
            contract_id=contract_id,
            contract_number=contract_number,
            company_id=company_id,
            project_id=project_id,
            supervised_account_id=account.id,
            ledger_account_id=ledger_id,
            estate=estate,
            building=building,
            room=room,
            buyers_encrypted=keys.pii.encrypt(buyers_json.decode(), field=BUYERS_FIELD),
            created_at=now,
        )
    )
    await session.flush()
    notices = []
    for kind, due in (
        (NoticeKind.deposit, deposit_fen),
        (NoticeKind.down_payment, down_payment_fen),
    ):
        if due <= 0:
            continue
        notice = PaymentNotice(
            id=uuid.uuid4(),
            contract_id=contract_id,
            kind=kind,
            due_fen=due,
            reference=new_reference(),
            created_at=now,
        )
        session.add(notice)
        notices.append(notice)
    await session.flush()
    return notices


async def notices_of(session: AsyncSession, contract_id: uuid.UUID) -> list[PaymentNotice]:
    return list(
        await session.scalars(
            select(PaymentNotice)
            .where(PaymentNotice.contract_id == contract_id)
            .order_by(PaymentNotice.created_at, PaymentNotice.kind)
        )
    )


async def paid_by_notice(
    session: AsyncSession, notice_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    paid = dict.fromkeys(notice_ids, 0)
    if notice_ids:
        rows = await session.execute(
            select(Transfer.notice_id, func.sum(Transfer.amount_fen))
            .where(Transfer.notice_id.in_(notice_ids), Transfer.kind.in_(PAID_KINDS))
            .group_by(Transfer.notice_id)
        )
        for notice_id, total in rows:
            paid[notice_id] = int(total)
    return paid


def notice_status(due: int, paid: int) -> str:
    if paid == 0:
        return "unpaid"
    if paid < due:
        return "partial"
    return "paid" if paid == due else "overpaid"


async def escrow_contract(session: AsyncSession, contract_id: uuid.UUID) -> EscrowContract | None:
    return await session.get(EscrowContract, contract_id)


def pay_url(pay_base: str, reference: str, outstanding_fen: int, account_number: str) -> str | None:
    """The bank's payment page for a notice: the one address the QR and the button open."""
    if not pay_base or outstanding_fen <= 0:
        return None
    query = urlencode(
        {"reference": reference, "amount_fen": outstanding_fen, "account": account_number}
    )
    return f"{pay_base}?{query}"


async def notice_answers(
    session: AsyncSession, contract: EscrowContract, *, pay_base: str = ""
) -> list[schemas.NoticeAnswer]:
    account = await session.get(SupervisedAccount, contract.supervised_account_id)
    assert account is not None
    notices = await notices_of(session, contract.contract_id)
    paid = await paid_by_notice(session, [n.id for n in notices])
    answers = []
    for n in notices:
        p = paid[n.id]
        status = notice_status(n.due_fen, p)
        answers.append(
            schemas.NoticeAnswer(
                id=n.id,
                contract_id=n.contract_id,
                contract_number=contract.contract_number,
                kind=n.kind.value,
                due_fen=n.due_fen,
                paid_fen=p,
                outstanding_fen=max(n.due_fen - p, 0),
                overpaid_fen=max(p - n.due_fen, 0),
                status=status,
                closed=p == n.due_fen,
                refund_flagged=p > n.due_fen,
                reference=n.reference,
                bank_name=account.bank_name,
                account_name=account.account_name,
                account_number_masked=mask_account(account.account_number),
                qr_png=f"/api/v1/payment-notices/{n.id}/qr.png",
                pay_url=pay_url(
                    pay_base, n.reference, max(n.due_fen - p, 0), account.account_number
                ),
                created_at=n.created_at,
            )
        )
    return answers


async def notice_pay_target(
    session: AsyncSession, notice_id: uuid.UUID
) -> tuple[PaymentNotice, EscrowContract, SupervisedAccount] | None:
    notice = await session.get(PaymentNotice, notice_id)
    if notice is None:
        return None
    contract = await session.get(EscrowContract, notice.contract_id)
    assert contract is not None
    account = await session.get(SupervisedAccount, contract.supervised_account_id)
    assert account is not None
    return notice, contract, account


def _buyers(keys: ServiceKeys, contract: EscrowContract) -> list[NoticePayee]:
    raw = keys.pii.decrypt(contract.buyers_encrypted, field=BUYERS_FIELD)
    return [NoticePayee(**b) for b in msgspec.json.decode(raw)]


# ------------------------------------------------------------------ refunds and releases


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
    return instruction


@dataclass(frozen=True)
class AccountFigures:
    bank_balance_fen: int
    held_for_contracts_fen: int
    refunds_pending_fen: int
    suspense_fen: int
    released_fen: int
    releases_pending_fen: int

    @property
    def available_for_release_fen(self) -> int:
        return (
            self.bank_balance_fen
            - self.refunds_pending_fen
            - self.suspense_fen
            - self.releases_pending_fen
        )


async def figures(session: AsyncSession, account_id: uuid.UUID, *, now: datetime) -> AccountFigures:
    # Read only (statements are GETs): ledger accounts not made yet count as zero.
    ids = dict(
        (
            await session.execute(
                select(LedgerAccount.kind, LedgerAccount.id).where(
                    LedgerAccount.supervised_account_id == account_id,
                    LedgerAccount.kind != LedgerKind.contract,
                )
            )
        ).all()
    )
    found = await ledger.balances(session, list(ids.values()))
    values = {kind: found[i] for kind, i in ids.items()}
    contract_ids = list(
        await session.scalars(
            select(LedgerAccount.id).where(
                LedgerAccount.supervised_account_id == account_id,
                LedgerAccount.kind == LedgerKind.contract,
            )
        )
    )
    held = sum((await ledger.balances(session, contract_ids)).values())
    pending = await session.scalar(
        select(func.coalesce(func.sum(Instruction.amount_fen), 0)).where(
            Instruction.supervised_account_id == account_id,
            Instruction.kind == InstructionKind.release,
            Instruction.status == InstructionStatus.approved,
        )
    )
    return AccountFigures(
        bank_balance_fen=values.get(LedgerKind.supervised, 0),
        held_for_contracts_fen=held,
        refunds_pending_fen=values.get(LedgerKind.buyer_refunds, 0),
        suspense_fen=values.get(LedgerKind.suspense, 0),
        released_fen=values.get(LedgerKind.developer_payouts, 0),
        releases_pending_fen=int(pending or 0),
    )


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


async def _lock_account(session: AsyncSession, account_id: uuid.UUID) -> SupervisedAccount | None:
    statement = select(SupervisedAccount).where(SupervisedAccount.id == account_id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return await session.scalar(statement)


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
    account = await _lock_account(session, account_id)
    if account is None or account.company_id != principal.company_id:
        raise _not_found("监管账户")
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
        raise _not_found("支取申请")
    account = await _lock_account(session, instruction.supervised_account_id)
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


# ------------------------------------------------------------------ bank webhook


def _fingerprint(event: schemas.BankWebhook) -> str:
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
    fingerprint = _fingerprint(event)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    event_id = await session.scalar(
        dialect.insert(BankEvent)
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
            log.warning(
                "bank transaction %s replayed with different content (amount %s, was %s)",
                data.transaction_id,
                data.amount_fen,
                seen.amount_fen,
            )
            raise DomainError(
                "bank_txn_conflict",
                "该银行流水号已以不同内容入账，拒绝处理。",
                transaction_id=data.transaction_id,
            )
        return schemas.WebhookAnswer(
            received=True, duplicate=True, transaction_id=data.transaction_id, outcome=seen.outcome
        )
    if event.type == "payment.received":
        outcome = await _apply_payment(session, keys, event_id, data, now=now)
    else:
        outcome = await _apply_instruction(session, keys, event_id, event.type, data, now=now)
    stored = await session.get(BankEvent, event_id)
    assert stored is not None
    stored.outcome = outcome
    await session.flush()
    return schemas.WebhookAnswer(
        received=True, duplicate=False, transaction_id=data.transaction_id, outcome=outcome
    )


async def _apply_payment(
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
    await _arrived_sms(session, keys, contract, data.transaction_id, data.amount_fen, now=now)
    paid = (await paid_by_notice(session, [notice.id]))[notice.id]
    return "overpaid" if paid > notice.due_fen else "applied"


async def _arrived_sms(
    session: AsyncSession,
    keys: ServiceKeys,
    contract: EscrowContract,
    txn_id: str,
    amount_fen: int,
    *,
    now: datetime,
) -> None:
    """The seed's SMS to every buyer: 首付款已到预售资金监管账户 (once per bank transaction)."""
    for buyer in _buyers(keys, contract):
        await outbox.enqueue_to_person(
            session,
            keys,
            template="down_payment_arrived",
            params={
                "estate": contract.estate,
                "building": contract.building,
                "room": contract.room,
                "buyer_name": buyer.name,
                "amount_fen": amount_fen,
                "business_no": contract.contract_number,
            },
            dedupe_key=f"{txn_id}:arrived:{buyer.phone}",
            phone=buyer.phone,
            company_id=contract.company_id,
            contract_id=contract.contract_id,
            now=now,
        )


async def _apply_instruction(
    session: AsyncSession,
    keys: ServiceKeys,
    event_id: uuid.UUID,
    event_type: str,
    data: schemas.BankEventData,
    *,
    now: datetime,
) -> str:
    kind = InstructionKind.refund if event_type == "refund.completed" else InstructionKind.release
    try:
        instruction_id = uuid.UUID(data.instruction_id)
    except ValueError:
        instruction_id = None
    instruction = await session.get(Instruction, instruction_id) if instruction_id else None
    if instruction is None or instruction.kind is not kind:
        raise DomainError("bank_instruction_unknown", "银行回调所指的支付指令不存在。")
    account = await _lock_account(session, instruction.supervised_account_id)
    assert account is not None
    await session.refresh(instruction)
    if account.account_number != data.account_number or instruction.amount_fen != data.amount_fen:
        log.warning("bank %s for instruction %s does not match it", event_type, instruction.id)
        raise DomainError("bank_instruction_mismatch", "银行回调的账号或金额与支付指令不符。")
    if instruction.status is not InstructionStatus.approved:
        raise DomainError("bank_instruction_not_open", "该支付指令不在待执行状态。")
    ids = await ensure_account_ledgers(session, account.id, now=now)
    source = (
        LedgerKind.buyer_refunds if kind is InstructionKind.refund else LedgerKind.developer_payouts
    )
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
    if kind is InstructionKind.refund and instruction.contract_id is not None:
        contract = await session.get(EscrowContract, instruction.contract_id)
        assert contract is not None
        for buyer in _buyers(keys, contract):
            await outbox.enqueue_to_person(
                session,
                keys,
                template="refund_completed",
                params={
                    "estate": contract.estate,
                    "building": contract.building,
                    "room": contract.room,
                    "contract_number": contract.contract_number,
                    "amount_fen": data.amount_fen,
                },
                dedupe_key=f"{data.transaction_id}:refunded:{buyer.phone}",
                phone=buyer.phone,
                company_id=contract.company_id,
                contract_id=contract.contract_id,
                now=now,
            )
    return "applied"


# ------------------------------------------------------------------ statements, suspense


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
        raise _not_found("挂账款项")
    suspense = await session.get(LedgerAccount, original.credit_account_id)
    assert suspense is not None
    notice = await session.get(PaymentNotice, notice_id)
    if notice is None:
        raise _not_found("缴款通知")
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
    event = await session.get(BankEvent, original.bank_event_id)
    assert event is not None
    await _arrived_sms(session, keys, contract, event.txn_id, original.amount_fen, now=now)
    return contract


# ------------------------------------------------------------------ reconciliation


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
    banked = {"payment", "suspense", "refund_paid", "release_paid"}
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
