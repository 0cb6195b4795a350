"""Contract orders, their parties, signatures, audit events and number counters."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db.base import Base, HasId, str_enum


class OrderStatus(enum.StrEnum):
    draft = "draft"
    awaiting_signatures = "awaiting_signatures"
    awaiting_seal = "awaiting_seal"
    signed = "signed"
    expired = "expired"
    voided = "voided"


# An order in one of these holds its unit: at most one per unit (the partial unique index).
LIVE_STATUSES = (
    OrderStatus.draft,
    OrderStatus.awaiting_signatures,
    OrderStatus.awaiting_seal,
    OrderStatus.signed,
)
_LIVE_SQL = "status IN ('draft', 'awaiting_signatures', 'awaiting_seal', 'signed')"


class ContractKind(enum.StrEnum):
    presale = "presale"  # 期房
    spot = "spot"  # 现房


class PaymentMethod(enum.StrEnum):
    lump_sum = "lump_sum"  # 一次性付款
    installments = "installments"  # 分期付款
    commercial_loan = "commercial_loan"  # 商业贷款
    provident_fund_loan = "provident_fund_loan"  # 公积金贷款
    combined_loan = "combined_loan"  # 组合贷款



class ContractOrder(HasId, Base):
    """One contract order (合同订单) for one unit, from draft to signed."""

    __tablename__ = "contract_orders"
    __table_args__ = (
        Index(
            "uq_contract_orders_live_unit",
            "unit_id",
            unique=True,
            sqlite_where=text(_LIVE_SQL),
            postgresql_where=text(_LIVE_SQL),
        ),
        Index("ix_contract_orders_status_expires_at", "status", "expires_at"),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id"), index=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    building_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buildings.id"), index=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_members.id"))
    kind: Mapped[ContractKind] = mapped_column(str_enum(ContractKind, "contract_kind"))
    status: Mapped[OrderStatus] = mapped_column(str_enum(OrderStatus, "order_status"))
    price_fen: Mapped[int] = mapped_column(BigInteger)
    payment_method: Mapped[PaymentMethod] = mapped_column(str_enum(PaymentMethod, "payment_method"))
    deposit_fen: Mapped[int] = mapped_column(BigInteger)
    down_payment_fen: Mapped[int] = mapped_column(BigInteger)
    delivery_date: Mapped[date]
    template_id: Mapped[str] = mapped_column(String(64))
    template_version: Mapped[str] = mapped_column(String(32))
    # The terms as JSON (unit, parties, money) before issuing; frozen into the document.
    terms_json: Mapped[str] = mapped_column(Text)
    document_json: Mapped[str | None] = mapped_column(Text)  # canonical text once issued
    document_hash: Mapped[str | None] = mapped_column(String(64))
    scene: Mapped[str | None] = mapped_column(String(32), unique=True)
    issued_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]  # expired or voided
    end_reason: Mapped[str] = mapped_column(String(200), default="")
    contract_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContractParty(HasId, Base):
    """A person who must sign (buyer); bound to a citizen account when they scan."""

    __tablename__ = "contract_parties"
    __table_args__ = (UniqueConstraint("order_id", "position"),)

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contract_orders.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # buyer
    name: Mapped[str] = mapped_column(String(100))
    id_number_encrypted: Mapped[str] = mapped_column(String(200))
    id_number_index: Mapped[str] = mapped_column(String(64), index=True)
    id_number_masked: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str] = mapped_column(String(16))
    share: Mapped[str] = mapped_column(String(16), default="")
    citizen_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    signed_at: Mapped[datetime | None]
    declined_at: Mapped[datetime | None]
    # The contract password, encrypted, until this buyer has been shown it once.
    password_encrypted: Mapped[str | None] = mapped_column(String(200))


class ContractSignature(HasId, Base):
    """A signing act: the signing core's ``SignatureRecord.to_dict()`` as JSON."""

    __tablename__ = "contract_signatures"
    __table_args__ = (UniqueConstraint("order_id", "signer_key"),)

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contract_orders.id"), index=True)
    # The party id for a person, "seal" for the company seal: one signature each.
    signer_key: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    record_json: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime]


class ContractEvent(HasId, Base):
    """One hash-chained audit event (signing.evidence.next_event) of an order."""

    __tablename__ = "contract_events"
    __table_args__ = (UniqueConstraint("order_id", "seq"),)

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contract_orders.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(32))
    event_json: Mapped[str] = mapped_column(Text)  # {"index", "previous_hash", "payload", "hash"}
    created_at: Mapped[datetime]


class ContractCounter(Base):
    """Contract number sequences, e.g. "YS2026" -> last number used (locked FOR UPDATE)."""

    __tablename__ = "contract_counters"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class ContractDocument(HasId, Base):
    """A contract's PDF as it grows: revision 0 (typeset), one incremental revision per
    signing act, then the seal, the platform's stamp and the document time-stamp."""

    __tablename__ = "contract_documents"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contract_orders.id"), unique=True)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    # SHA-256 of the finished file, so verify-pdf finds it by its bytes.
    pdf_sha256: Mapped[str] = mapped_column(String(64), index=True)
    complete: Mapped[bool]
    updated_at: Mapped[datetime]


class ContractTimestamp(HasId, Base):
    """An RFC 3161 time-stamp token over one signing act's CMS signature."""

    __tablename__ = "contract_timestamps"
    __table_args__ = (UniqueConstraint("order_id", "signer_key"),)

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contract_orders.id"), index=True)
    signer_key: Mapped[str] = mapped_column(String(64))  # as ContractSignature.signer_key
    token: Mapped[str] = mapped_column(Text)  # base64 DER
    stamped_at: Mapped[datetime]
