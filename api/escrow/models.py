"""Escrow tables. Money is integer fen. The ledger (accounts + transfers) is append-only:
transfers are never updated or deleted (database triggers refuse it); balances are SUMs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db.base import Base, HasId, str_enum


class AccountScope(enum.StrEnum):
    project = "project"  # 预售资金监管: a developer's account for one project
    resale = "resale"  # 存量房交易资金监管: the city's account for resale buyers' money


class AccountStatus(enum.StrEnum):
    pending = "pending"  # created by the company admin, waiting for a regulator
    approved = "approved"
    rejected = "rejected"


class LedgerKind(enum.StrEnum):
    bank_clearing = "bank_clearing"  # the outside world's side of unmatched bank money
    supervised = "supervised"  # money in one supervised bank account (its bank balance)
    contract = "contract"  # money held for one contract (owed back on cancellation)
    developer_payouts = "developer_payouts"  # released to the developer, per account
    buyer_refunds = "buyer_refunds"  # refunds instructed, waiting for the bank, per account
    suspense = "suspense"  # money nobody could match, per account (or global)
    seller_payouts = "seller_payouts"  # resale: released to sellers, waiting for the bank


class Side(enum.StrEnum):
    debit = "debit"  # balance = debits - credits
    credit = "credit"  # balance = credits - debits


class NoticeKind(enum.StrEnum):
    deposit = "deposit"  # 定金
    down_payment = "down_payment"  # 首付款


class InstructionKind(enum.StrEnum):
    refund = "refund"
    release = "release"
    payout = "payout"  # resale: a contract's money to its sellers, on transfer registration


class InstructionStatus(enum.StrEnum):
    requested = "requested"  # a release waiting for the regulator
    approved = "approved"  # sent to the bank, waiting for its confirmation
    rejected = "rejected"
    completed = "completed"  # the bank confirmed by webhook


class SupervisedAccount(HasId, Base):
    """A project's supervised bank account (预售资金监管账户) and its key supervised
    amounts (重点监管资金) per construction milestone."""

    __tablename__ = "escrow_supervised_accounts"

    # A developer's account for one project; the city's resale account has neither.
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id"), index=True)
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id"), index=True)
    scope: Mapped[AccountScope] = mapped_column(
        str_enum(AccountScope, "escrow_account_scope"), default=AccountScope.project
    )
    bank_name: Mapped[str] = mapped_column(String(200))
    account_name: Mapped[str] = mapped_column(String(200))
    account_number: Mapped[str] = mapped_column(String(40), unique=True)
    # In order of construction: [{"code": "topped_out", "name": "主体封顶",
    # "key_percent": 40, "key_amount_fen": 199181}, ...]. ``key_percent`` is the share of
    # the key supervised amount that stays after the milestone; ``key_amount_fen`` is
    # computed from the regulator's rate (absent until it is set). Accounts registered
    # before shares existed carry a fixed ``key_amount_fen`` and no ``key_percent``.
    milestones: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # 重点监管资金 per m² set by a regulator, the project's total building area (0.0001 m²)
    # it was computed from, and when and by whom (seed 001 5.3).
    key_rate_fen_per_m2: Mapped[int | None] = mapped_column(BigInteger)
    key_area: Mapped[int | None] = mapped_column(BigInteger)
    key_rate_set_by: Mapped[uuid.UUID | None]
    key_rate_set_at: Mapped[datetime | None]
    status: Mapped[AccountStatus] = mapped_column(str_enum(AccountStatus, "escrow_account_status"))
    created_by: Mapped[uuid.UUID]
    created_at: Mapped[datetime]
    reviewed_by: Mapped[uuid.UUID | None]
    reviewed_at: Mapped[datetime | None]
    review_reason: Mapped[str] = mapped_column(String(500), default="")


class LedgerAccount(HasId, Base):
    __tablename__ = "escrow_ledger_accounts"

    code: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[LedgerKind] = mapped_column(str_enum(LedgerKind, "escrow_ledger_kind"))
    side: Mapped[Side] = mapped_column(str_enum(Side, "escrow_side"))
    # A guarded account's balance (on its own side) can never go below zero.
    guarded: Mapped[bool] = mapped_column(Boolean)
    supervised_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("escrow_supervised_accounts.id"), index=True
    )
    contract_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime]


# The encryption field of ``EscrowContract.payee_encrypted``.
PAYEE_FIELD = "escrow.payee"


class EscrowContract(Base):
    """What escrow knows of a contract handed over to it (contracts call us; we never read
    them): from its issue when the deposit is paid before signing, else from completion."""

    __tablename__ = "escrow_contracts"

    contract_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # 网签业务宗号, named in payment messages; the contract number once it is signed.
    business_number: Mapped[str] = mapped_column(String(64))
    contract_number: Mapped[str | None] = mapped_column(String(64))
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id"), index=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    supervised_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escrow_supervised_accounts.id"), index=True
    )
    ledger_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("escrow_ledger_accounts.id"))
    estate: Mapped[str] = mapped_column(String(200))
    building: Mapped[str] = mapped_column(String(100))
    room: Mapped[str] = mapped_column(String(32))
    # JSON list of {"phone", "name"}, encrypted (PII).
    buyers_encrypted: Mapped[str] = mapped_column(Text)
    # Resale: the seller's account the money is released to, JSON, encrypted (PII).
    payee_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    # The contract was cancelled, or its order ended before signing: nothing more is due,
    # and whatever it holds, or still receives, goes back to the buyers.
    cancelled_at: Mapped[datetime | None]


class EscrowContractParty(Base):
    """A citizen who signed a contract escrow knows of: they may read its payment notices.
    Written when the contracts context hands the completed contract over."""

    __tablename__ = "escrow_contract_parties"

    contract_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escrow_contracts.contract_id"), primary_key=True
    )
    citizen_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("citizens.id"), primary_key=True)


class PaymentNotice(HasId, Base):
    """资金缴款通知单: what a buyer must pay into the supervised account, under which
    reference. What was paid is derived from the ledger."""

    __tablename__ = "escrow_payment_notices"
    __table_args__ = (
        CheckConstraint("due_fen > 0", name="due_positive"),
        UniqueConstraint("contract_id", "kind"),  # one deposit and one down payment notice
    )

    contract_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escrow_contracts.contract_id"), index=True
    )
    kind: Mapped[NoticeKind] = mapped_column(str_enum(NoticeKind, "escrow_notice_kind"))
    due_fen: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime]


class BankEvent(HasId, Base):
    """Every bank webhook applied, once per bank transaction id."""

    __tablename__ = "escrow_bank_events"

    txn_id: Mapped[str] = mapped_column(String(100), unique=True)
    event_type: Mapped[str] = mapped_column(String(40))
    fingerprint: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    account_number: Mapped[str] = mapped_column(String(40))
    reference: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]


class Instruction(HasId, Base):
    """A payment out of a supervised account: a release to the developer (regulator
    approved) or a refund to buyers (on cancellation). The bank confirms by webhook."""

    __tablename__ = "escrow_instructions"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        Index("ix_escrow_instructions_account_status", "supervised_account_id", "status"),
    )

    kind: Mapped[InstructionKind] = mapped_column(str_enum(InstructionKind, "escrow_instr_kind"))
    supervised_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escrow_supervised_accounts.id")
    )
    contract_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    milestone: Mapped[str] = mapped_column(String(40), default="")
    status: Mapped[InstructionStatus] = mapped_column(
        str_enum(InstructionStatus, "escrow_instr_status")
    )
    requested_by: Mapped[uuid.UUID | None]
    requested_at: Mapped[datetime]
    reviewed_by: Mapped[uuid.UUID | None]
    reviewed_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(String(500), default="")
    bank_event_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("escrow_bank_events.id"))
    completed_at: Mapped[datetime | None]


class Transfer(HasId, Base):
    """One movement of money between two ledger accounts. Never updated, never deleted."""

    __tablename__ = "escrow_transfers"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
    )

    debit_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escrow_ledger_accounts.id"), index=True
    )
    credit_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escrow_ledger_accounts.id"), index=True
    )
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(40))
    bank_event_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("escrow_bank_events.id"), index=True
    )
    notice_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("escrow_payment_notices.id"), index=True
    )
    instruction_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("escrow_instructions.id"), index=True
    )
    # A correction names the transfer it corrects (at most once): a suspense payment
    # assigned to its notice by a regulator.
    corrects_transfer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("escrow_transfers.id"), unique=True
    )
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]


class DeliveryState(enum.StrEnum):
    pending = "pending"  # waiting for its next push
    acknowledged = "acknowledged"  # the bank's gateway took it (its reference recorded)
    dead = "dead"  # refused by the bank, or out of attempts: a person must look
    withdrawn = "withdrawn"  # taken back before it was ever sent (a release yielding to refunds)


class InstructionDelivery(Base):
    """An approved instruction on its way to the bank's gateway (银企直联 front-end):
    pushed as a signed, idempotent request (the instruction id is the key) until the bank
    acknowledges it. Its completion still comes back as the bank's webhook."""

    __tablename__ = "escrow_instruction_deliveries"

    instruction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escrow_instructions.id"), primary_key=True
    )
    status: Mapped[DeliveryState] = mapped_column(str_enum(DeliveryState, "escrow_delivery_state"))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
    bank_reference: Mapped[str] = mapped_column(String(100), default="")
    last_error: Mapped[str] = mapped_column(String(500), default="")
    acknowledged_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
