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

from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.escrow import ledger, schemas
from api.escrow.accounts import (
    approved_account_for_project,
    can_read_company,
    ensure_account_ledgers,
)
from api.escrow.models import (
    EscrowContract,
    EscrowContractParty,
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
    for citizen_id in {b.citizen_id for b in buyers if b.citizen_id is not None}:
        session.add(EscrowContractParty(contract_id=contract_id, citizen_id=citizen_id))
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
                    pay_base, n.reference, max(n.due_fen - p, 0), account.account_number,
                    pay_secret,
                ),
                created_at=n.created_at,
            )
        )
    return answers


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
        outbox.ContractNews(
            contract.contract_id,
            contract.company_id,
            contract.estate,
            contract.building,
            contract.room,
        ),
        [outbox.Addressee(b.phone, b.name, b.phone) for b in payees_of(keys, contract)],
        template=template,
        params=params,
        event_key=event_key,
        now=now,
        by_name=by_name,
    )


async def arrived_sms(
    session: AsyncSession,
    keys: ServiceKeys,
    contract: EscrowContract,
    txn_id: str,
    amount_fen: int,
    *,
    now: datetime,
) -> None:
    """The seed's SMS to every buyer: 首付款已到预售资金监管账户 (once per bank transaction)."""
    await notify_buyers(
        session,
        keys,
        contract,
        template="down_payment_arrived",
        params={"amount_fen": amount_fen, "business_no": contract.contract_number},
        event_key=f"{txn_id}:arrived",
        now=now,
        by_name=True,
    )
