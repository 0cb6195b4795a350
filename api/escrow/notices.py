"""Payment notices (资金缴款通知单): what escrow keeps of a completed contract when the
contracts context hands it over (buyers, parties, the supervised account), the notices
for the deposit and the down payment, what was paid on each (from the ledger), and the
bank's payment page a notice's QR code opens.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import as_utc
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import insert_into
from api.escrow import ledger, schemas
from api.escrow.accounts import (
    approved_account_for_project,
    can_read_company,
    ensure_account_ledgers,
)
from api.escrow.instructions import request_refund
from api.escrow.models import (
    PAYEE_FIELD,
    AccountScope,
    BankEvent,
    EscrowContract,
    EscrowContractParty,
    Instruction,
    InstructionKind,
    InstructionStatus,
    LedgerKind,
    NoticeKind,
    PaymentNotice,
    SupervisedAccount,
    Transfer,
)
from api.escrow.pay_links import signed_pay_url
from api.identity.principal import Principal
from api.outbox import service as outbox
from signing.pii import mask_account

BUYERS_FIELD = "escrow.buyers"
PAID_KINDS = ("payment", "suspense_assigned")  # what counts as paid on a notice
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud at a bank


@dataclass(frozen=True)
class NoticePayee:
    """A buyer who gets the payment notice and the "arrived" SMS; ``citizen_id`` is the
    account that signed as this buyer (it may read the notices)."""

    phone: str
    name: str
    citizen_id: uuid.UUID | None = None


def new_reference() -> str:
    return "WQ" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(12))


async def hand_over(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    contract_id: uuid.UUID,
    business_number: str,
    project_id: uuid.UUID,
    company_id: uuid.UUID | None,
    buyers: list[NoticePayee],
    estate: str,
    building: str,
    room: str,
    now: datetime,
    contract_number: str | None = None,
    account_id: uuid.UUID | None = None,
    payee: str | None = None,
) -> EscrowContract:
    """Called by contracts: what escrow keeps of an order, in the account ``account_id``
    (by default the project's approved supervised account). Once at issue when the deposit
    is paid before signing, again at completion (the contract number, and the buyers as
    they signed); calling it again updates, never duplicates. ``payee`` (JSON) is the
    account a resale's money is released to."""
    contract = await session.get(EscrowContract, contract_id)
    buyers_json = msgspec.json.encode([{"phone": b.phone, "name": b.name} for b in buyers])
    if contract is None:
        account = (
            await session.get(SupervisedAccount, account_id)
            if account_id is not None
            else await approved_account_for_project(session, project_id)
        )
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
        contract = EscrowContract(
            contract_id=contract_id,
            business_number=business_number,
            company_id=company_id,
            project_id=project_id,
            supervised_account_id=account.id,
            ledger_account_id=ledger_id,
            estate=estate,
            building=building,
            room=room,
            created_at=now,
        )
        session.add(contract)
    contract.contract_number = contract_number or contract.contract_number
    contract.buyers_encrypted = keys.pii.encrypt(buyers_json.decode(), field=BUYERS_FIELD)
    if payee is not None:
        contract.payee_encrypted = keys.pii.encrypt(payee, field=PAYEE_FIELD)
    await session.flush()
    known = set(
        await session.scalars(
            select(EscrowContractParty.citizen_id).where(
                EscrowContractParty.contract_id == contract_id
            )
        )
    )
    for citizen_id in {b.citizen_id for b in buyers if b.citizen_id is not None} - known:
        session.add(EscrowContractParty(contract_id=contract_id, citizen_id=citizen_id))
    await session.flush()
    return contract


async def open_notice(
    session: AsyncSession,
    contract: EscrowContract,
    kind: NoticeKind,
    due_fen: int,
    *,
    now: datetime,
) -> PaymentNotice | None:
    """The notice for ``kind`` (deposit or down payment): made once, when above zero."""
    if due_fen < 0:
        raise ValueError("amounts due cannot be negative")
    existing = await session.scalar(
        select(PaymentNotice).where(
            PaymentNotice.contract_id == contract.contract_id, PaymentNotice.kind == kind
        )
    )
    if existing is not None or due_fen == 0:
        return existing
    notice = PaymentNotice(
        id=uuid.uuid4(),
        contract_id=contract.contract_id,
        kind=kind,
        due_fen=due_fen,
        reference=new_reference(),
        created_at=now,
    )
    session.add(notice)
    await session.flush()
    return notice


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
    business_number: str | None = None,
) -> list[PaymentNotice]:
    """A completed contract handed over with both its notices at once (the deposit and the
    down payment, each only when above zero). Calling it again changes nothing."""
    if deposit_fen < 0 or down_payment_fen < 0:
        raise ValueError("amounts due cannot be negative")
    contract = await hand_over(
        session,
        keys,
        contract_id=contract_id,
        business_number=business_number or contract_number,
        contract_number=contract_number,
        project_id=project_id,
        company_id=company_id,
        buyers=buyers,
        estate=estate,
        building=building,
        room=room,
        now=now,
    )
    await open_notice(session, contract, NoticeKind.deposit, deposit_fen, now=now)
    await open_notice(session, contract, NoticeKind.down_payment, down_payment_fen, now=now)
    return await notices_of(session, contract_id)


async def admit_party(session: AsyncSession, contract_id: uuid.UUID, citizen_id: uuid.UUID) -> None:
    """A citizen just bound to a party of an order escrow knows (its deposit notice opened
    at issue) may read its notices from now on."""
    if await session.get(EscrowContract, contract_id) is None:
        return
    await session.execute(
        insert_into(session, EscrowContractParty)
        .values(contract_id=contract_id, citizen_id=citizen_id)
        .on_conflict_do_nothing()
    )


async def held_for(session: AsyncSession, contract_id: uuid.UUID) -> int:
    """What the buyers of a contract have in supervision now (0 when escrow never knew it)."""
    contract = await session.get(EscrowContract, contract_id)
    if contract is None:
        return 0
    return await ledger.balance(session, contract.ledger_account_id)


async def deposit_settled(session: AsyncSession, contract_id: uuid.UUID) -> bool:
    """Whether nothing stops signing for money: no deposit notice, or paid equals due
    (seed 001: the task completes only when 实付金额 equals 应付金额)."""
    notice = await session.scalar(
        select(PaymentNotice).where(
            PaymentNotice.contract_id == contract_id, PaymentNotice.kind == NoticeKind.deposit
        )
    )
    if notice is None:
        return True
    return (await paid_by_notice(session, [notice.id]))[notice.id] == notice.due_fen


async def notices_settled(session: AsyncSession, contract_id: uuid.UUID) -> bool:
    """Whether every notice of a contract is paid in full (none open: True)."""
    notices = await notices_of(session, contract_id)
    paid = await paid_by_notice(session, [n.id for n in notices])
    return all(paid[n.id] >= n.due_fen for n in notices)


async def close_contract(session: AsyncSession, contract_id: uuid.UUID, *, now: datetime) -> int:
    """Called by contracts when a contract is cancelled or an order ends before signing:
    nothing more is due, and every fen it holds goes back to the buyers (a refund
    instruction to the bank). Money that still arrives later is refunded as it comes.
    Returns the fen instructed for refund now (0 when nothing was held or escrow never
    knew the order)."""
    contract = await session.get(EscrowContract, contract_id)
    if contract is None:
        return 0
    contract.cancelled_at = contract.cancelled_at or now
    instruction = await request_refund(session, contract_id=contract_id, now=now)
    return instruction.amount_fen if instruction is not None else 0


async def notices_of(session: AsyncSession, contract_id: uuid.UUID) -> list[PaymentNotice]:
    return list(
        await session.scalars(
            select(PaymentNotice)
            .where(PaymentNotice.contract_id == contract_id)
            .order_by(PaymentNotice.created_at, PaymentNotice.kind)
        )
    )


async def payments_by_notice(
    session: AsyncSession, notice_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[schemas.NoticePayment]]:
    """What arrived against each notice, oldest first, with the bank's transaction id."""
    found: dict[uuid.UUID, list[schemas.NoticePayment]] = {i: [] for i in notice_ids}
    if notice_ids:
        rows = await session.execute(
            select(Transfer.notice_id, Transfer.created_at, Transfer.amount_fen, BankEvent.txn_id)
            .outerjoin(BankEvent, BankEvent.id == Transfer.bank_event_id)
            .where(Transfer.notice_id.in_(notice_ids), Transfer.kind.in_(PAID_KINDS))
            .order_by(Transfer.created_at, Transfer.id)
        )
        for notice_id, at, amount, txn in rows:
            found[notice_id].append(
                schemas.NoticePayment(
                    at=as_utc(at), amount_fen=int(amount), bank_transaction_id=txn or ""
                )
            )
    return found


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


async def readable_contract(
    session: AsyncSession, principal: Principal, contract_id: uuid.UUID
) -> EscrowContract:
    """A contract's escrow record, for its company's staff, regulators and the citizens
    who signed it; "not found" for anyone else, as for a contract that does not exist."""
    contract = await session.get(EscrowContract, contract_id)
    if contract is not None and (
        can_read_company(principal, contract.company_id)
        or (
            principal.citizen_id is not None
            and await session.get(EscrowContractParty, (contract_id, principal.citizen_id))
            is not None
        )
    ):
        return contract
    raise DomainError.not_found("缴款通知")


def pay_url(
    pay_base: str, reference: str, outstanding_fen: int, account_number: str, secret: str = ""
) -> str | None:
    """The bank's payment page for a notice: the one address the QR and the button open,
    its reference, amount and account signed (``pay_links``)."""
    if not pay_base or outstanding_fen <= 0:
        return None
    return signed_pay_url(pay_base, secret, reference, outstanding_fen, account_number)


async def notice_answers(
    session: AsyncSession, contract: EscrowContract, *, pay_base: str = "", pay_secret: str = ""
) -> list[schemas.NoticeAnswer]:
    account = await session.get(SupervisedAccount, contract.supervised_account_id)
    assert account is not None
    notices = await notices_of(session, contract.contract_id)
    paid = await paid_by_notice(session, [n.id for n in notices])
    arrived = await payments_by_notice(session, [n.id for n in notices])
    answers = []
    cancelled = contract.cancelled_at is not None
    for n in notices:
        p = paid[n.id]
        # A cancelled contract asks for nothing more; what it held is being refunded.
        status = "cancelled" if cancelled else notice_status(n.due_fen, p)
        outstanding = 0 if cancelled else max(n.due_fen - p, 0)
        answers.append(
            schemas.NoticeAnswer(
                id=n.id,
                contract_id=n.contract_id,
                contract_number=contract.contract_number,
                kind=n.kind.value,
                due_fen=n.due_fen,
                paid_fen=p,
                outstanding_fen=outstanding,
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
                    pay_base, n.reference, outstanding, account.account_number, pay_secret
                ),
                created_at=n.created_at,
                payments=arrived[n.id],
                # Paid in full by the payment that made paid equal due: the last one.
                paid_at=arrived[n.id][-1].at if p == n.due_fen and arrived[n.id] else None,
                receipt_pdf=f"/api/v1/payment-notices/{n.id}/receipt.pdf"
                if p == n.due_fen
                else None,
            )
        )
    return answers


async def notice_list(
    session: AsyncSession, contract: EscrowContract, *, pay_base: str, pay_secret: str = ""
) -> schemas.NoticeList:
    """A contract's notices, and where its refunds stand."""
    refunds = dict(
        (
            await session.execute(
                select(Instruction.status, func.coalesce(func.sum(Instruction.amount_fen), 0))
                .where(
                    Instruction.contract_id == contract.contract_id,
                    Instruction.kind == InstructionKind.refund,
                )
                .group_by(Instruction.status)
            )
        ).all()
    )
    return schemas.NoticeList(
        contract_id=contract.contract_id,
        items=await notice_answers(session, contract, pay_base=pay_base, pay_secret=pay_secret),
        refunded_fen=int(refunds.get(InstructionStatus.completed, 0)),
        refunding_fen=int(refunds.get(InstructionStatus.approved, 0)),
    )


async def pay_page_of(
    session: AsyncSession,
    principal: Principal,
    notice_id: uuid.UUID,
    *,
    pay_base: str,
    pay_secret: str = "",
) -> str:
    """The bank's payment page for what is still due on a notice (its QR code opens it)."""
    notice = await session.get(PaymentNotice, notice_id)
    if notice is None:
        raise DomainError.not_found("缴款通知")
    contract = await readable_contract(session, principal, notice.contract_id)
    if contract.cancelled_at is not None:
        raise DomainError("notice_cancelled", "该合同已注销或作废，无需再缴款。")
    if not pay_base:
        raise DomainError("bank_not_configured", "未配置银行缴款页面。")
    account = await session.get(SupervisedAccount, contract.supervised_account_id)
    assert account is not None
    paid = (await paid_by_notice(session, [notice.id]))[notice.id]
    url = pay_url(
        pay_base, notice.reference, notice.due_fen - paid, account.account_number, pay_secret
    )
    if url is None:
        raise DomainError("notice_closed", "该缴款通知已缴清，无需再次缴款。")
    return url


def payees_of(keys: ServiceKeys, contract: EscrowContract) -> list[NoticePayee]:
    raw = keys.pii.decrypt(contract.buyers_encrypted, field=BUYERS_FIELD)
    return [NoticePayee(**b) for b in msgspec.json.decode(raw)]


async def notify_buyers(
    session: AsyncSession,
    keys: ServiceKeys,
    contract: EscrowContract,
    *,
    template: str,
    params: dict[str, Any],
    event_key: str,
    now: datetime,
    by_name: bool = False,
) -> None:
    """One message about ``contract`` to every buyer escrow knows of, once per
    ``event_key`` (a bank transaction's, so a replayed event sends nothing again)."""
    await outbox.enqueue_to_parties(
        session,
        keys,
        _news(contract),
        _buyers(keys, contract),
        template=template,
        params=params,
        event_key=event_key,
        now=now,
        by_name=by_name,
    )


def _news(contract: EscrowContract) -> outbox.ContractNews:
    return outbox.ContractNews(
        contract.contract_id, contract.company_id, contract.estate, contract.building, contract.room
    )


def _buyers(keys: ServiceKeys, contract: EscrowContract) -> list[outbox.Addressee]:
    # Unique per buyer by the phone's keyed index: no number in clear in a dedupe key.
    return [
        outbox.Addressee(b.phone, b.name, keys.phone_index(b.phone))
        for b in payees_of(keys, contract)
    ]


async def arrived_sms(
    session: AsyncSession,
    keys: ServiceKeys,
    contract: EscrowContract,
    notice: PaymentNotice,
    txn_id: str,
    amount_fen: int,
    *,
    now: datetime,
) -> None:
    """The seed's SMS to every buyer that money reached the supervised account: the down
    payment's wording (首付款…已到预售资金监管账户), and one of the same shape for the
    deposit; it names the business number (网签业务宗号). Once per bank transaction. A
    resale's parties hear of the city's resale account instead."""
    account = await session.get(SupervisedAccount, contract.supervised_account_id)
    messages = arrival_messages(keys, contract, notice, account, txn_id, amount_fen)
    await outbox.enqueue_to_people(session, keys, messages, now=now)


def arrival_messages(
    keys: ServiceKeys,
    contract: EscrowContract,
    notice: PaymentNotice,
    account: SupervisedAccount | None,
    txn_id: str,
    amount_fen: int,
) -> list[outbox.PersonMessage]:
    """``arrived_sms``'s messages, for queueing a group of payments' in one go."""
    template = "deposit_arrived" if notice.kind is NoticeKind.deposit else "down_payment_arrived"
    if account is not None and account.scope is AccountScope.resale:
        template = "resale_funds_arrived"
    return outbox.party_messages(
        _news(contract),
        _buyers(keys, contract),
        template=template,
        params={"amount_fen": amount_fen, "business_no": contract.business_number},
        event_key=f"{txn_id}:arrived",
        by_name=True,
    )
