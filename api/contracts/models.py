"""Contract orders, their parties, signatures, audit events and number counters."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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

from api.core.validators import IdType
from api.core.versions import PROJECTS, building_scope, contract_scope, track
from api.db.base import Base, HasId, str_enum


class OrderStatus(enum.StrEnum):
    draft = "draft"  # 草稿: discarded 30 minutes after its last change if not issued
    awaiting_signatures = "awaiting_signatures"  # 待签署 (QR shown)
    awaiting_seal = "awaiting_seal"  # 待盖章: every buyer signed
    awaiting_submit = "awaiting_submit"  # resale: every party signed, the seller submits
    signed = "signed"  # 已签约: sealed, numbered (before filing existed, or resale)
    filing_pending = "filing_pending"  # 待备案: a regulator decides
    filing_rejected = "filing_rejected"  # 备案退回: the company resubmits or cancels
    filed = "filed"  # 已备案
    cancellation_pending = "cancellation_pending"  # 注销中: a cancellation is open
    transferred = "transferred"  # resale: 已过户, the title registered to the buyers
    cancelled = "cancelled"  # 已注销 (退房): the unit is free again
    expired = "expired"
    voided = "voided"


# An order that ended holds nothing; every other holds its unit, at most one per unit (the
# partial unique index says so in the database, whatever the code above it does).
ENDED_STATUSES = (OrderStatus.expired, OrderStatus.voided, OrderStatus.cancelled)
LIVE_STATUSES = tuple(s for s in OrderStatus if s not in ENDED_STATUSES)
_LIVE_SQL = "status NOT IN ('expired', 'voided', 'cancelled')"
# A contract exists (sealed and numbered): what filing and cancellation act on.
CONTRACT_STATUSES = (
    OrderStatus.signed,
    OrderStatus.filing_pending,
    OrderStatus.filing_rejected,
    OrderStatus.filed,
    OrderStatus.cancellation_pending,
    OrderStatus.transferred,
)


class ContractKind(enum.StrEnum):
    resale = "resale"  # 存量房 (二手房): a citizen sells the home on their title
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
        # One live order per resale title too (a title may one day cover several units).
        Index(
            "uq_contract_orders_live_title",
            "title_id",
            unique=True,
            sqlite_where=text(f"title_id IS NOT NULL AND {_LIVE_SQL}"),
            postgresql_where=text(f"title_id IS NOT NULL AND {_LIVE_SQL}"),
        ),
        Index("ix_contract_orders_status_expires_at", "status", "expires_at"),
        # A company's contracts, newest first (the staff list): read in index order, a page
        # costs the same at a thousand contracts and at a million (bench/bench_million.py).
        Index("ix_contract_orders_company_created", "company_id", "created_at", "id"),
        # The public building table: every column its query reads is in the index, so a
        # building's statuses come from the index alone, without visiting a million rows'
        # pages (api.contracts.reads.unit_contract_statuses).
        Index(
            "ix_contract_orders_building_status",
            "building_id",
            "status",
            "unit_id",
            "filing_number",
            "expires_at",
            "updated_at",
        ),
    )

    # The developer and its agent (new homes); None for a resale, which the seller made.
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    building_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buildings.id"))
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id"))
    # Resale: the owner who made the order, the title it sells, whether the buyer's money
    # goes through the city's supervised account (是否选择监管交易资金).
    seller_citizen_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("citizens.id"))
    title_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("resale_titles.id"))
    funds_supervised: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where the released money goes (the seller's own account), encrypted; resale only.
    seller_account_encrypted: Mapped[str | None] = mapped_column(Text)
    # 转移登记完成: the regulator recorded the title's transfer to the buyers.
    transfer_registered_at: Mapped[datetime | None]
    # An order that expired unsigned keeps only a masked tombstone of its parties.
    personal_data_purged_at: Mapped[datetime | None]
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
    # 网签业务宗号: the business this order is, from its issue (payment notices name it).
    business_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    # Filing (备案): submitted at the seal, decided by a regulator (or at once, "auto").
    filing_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    filing_submitted_at: Mapped[datetime | None]
    filed_at: Mapped[datetime | None]
    filing_rejection_reason: Mapped[str] = mapped_column(String(200), default="")
    filing_note: Mapped[str] = mapped_column(String(200), default="")
    # The last daily reminder (催签) to seal an order every buyer signed.
    reminded_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContractParty(HasId, Base):
    """A person who must sign (buyer); bound to a citizen account when they scan."""

    __tablename__ = "contract_parties"
    __table_args__ = (UniqueConstraint("order_id", "position"),)

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contract_orders.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # buyer or seller
    name: Mapped[str] = mapped_column(String(100))
    id_type: Mapped[IdType] = mapped_column(str_enum(IdType, "id_type"), default=IdType.resident_id)
    id_number_encrypted: Mapped[str] = mapped_column(String(200))
    id_number_index: Mapped[str] = mapped_column(String(64), index=True)
    id_number_masked: Mapped[str] = mapped_column(String(32))
    # Encrypted (api.core.keys.PARTY_PHONE) and masked; both "" once an expired order's
    # personal data is purged.
    phone_encrypted: Mapped[str] = mapped_column(String(200))
    phone_masked: Mapped[str] = mapped_column(String(16))
    share: Mapped[str] = mapped_column(String(16), default="")
    citizen_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("citizens.id"), index=True)
    signed_at: Mapped[datetime | None]
    declined_at: Mapped[datetime | None]
    # The contract password, encrypted: shown on asking once (password_shown_at), then
    # again only after a fresh SMS code.
    password_encrypted: Mapped[str | None] = mapped_column(String(200))
    password_shown_at: Mapped[datetime | None]


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
    """One hash-chained audit event (signing.event_chain.next_event) of an order."""

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


class CancellationStatus(enum.StrEnum):
    awaiting_signatures = "awaiting_signatures"  # every buyer signs the termination
    awaiting_seal = "awaiting_seal"  # the developer seals it
    awaiting_review = "awaiting_review"  # a regulator approves or rejects
    awaiting_submit = "awaiting_submit"  # resale: every party signed, its starter submits
    approved = "approved"  # the contract is cancelled; supervised money refunded
    rejected = "rejected"
    withdrawn = "withdrawn"


OPEN_CANCELLATION_STATUSES = (
    CancellationStatus.awaiting_signatures,
    CancellationStatus.awaiting_seal,
    CancellationStatus.awaiting_review,
    CancellationStatus.awaiting_submit,
)
_OPEN_CANCELLATION_SQL = "status NOT IN ('approved', 'rejected', 'withdrawn')"


class ContractCancellation(HasId, Base):
    """A cancellation of a signed contract (退房 / 合同注销): a termination agreement every
    party signs again, and (new homes) a regulator's decision. At most one open per order."""

    __tablename__ = "contract_cancellations"
    __table_args__ = (
        Index(
            "uq_contract_cancellations_open_order",
            "order_id",
            unique=True,
            sqlite_where=text(_OPEN_CANCELLATION_SQL),
            postgresql_where=text(_OPEN_CANCELLATION_SQL),
        ),
        Index("ix_contract_cancellations_status_created_at", "status", "created_at"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contract_orders.id"), index=True)
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id"), index=True)
    status: Mapped[CancellationStatus] = mapped_column(
        str_enum(CancellationStatus, "cancellation_status")
    )
    reason: Mapped[str] = mapped_column(String(200))
    # The buyers who apply (申请注销人), as party ids; the order's status before it.
    applicant_party_ids: Mapped[list[str]] = mapped_column(JSON)
    previous_status: Mapped[OrderStatus] = mapped_column(str_enum(OrderStatus, "order_status"))
    started_by: Mapped[str] = mapped_column(String(100))  # masked actor, as in the timeline
    started_by_citizen_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("citizens.id"))
    started_by_staff_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id"))
    scene: Mapped[str] = mapped_column(String(32), unique=True)
    document_json: Mapped[str] = mapped_column(Text)
    document_hash: Mapped[str] = mapped_column(String(64))
    decision_reason: Mapped[str] = mapped_column(String(200), default="")
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_members.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class CancellationSignature(HasId, Base):
    """A signing act on a termination agreement (one per party and cancellation)."""

    __tablename__ = "cancellation_signatures"
    __table_args__ = (UniqueConstraint("cancellation_id", "signer_key"),)

    cancellation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contract_cancellations.id"), index=True
    )
    signer_key: Mapped[str] = mapped_column(String(64))  # party id, or "seal"
    role: Mapped[str] = mapped_column(String(16))
    record_json: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime]


class CancellationDocument(HasId, Base):
    """A supporting document (凭证) of a cancellation: a PDF or an image, kept with its
    SHA-256 so the file the regulator reviewed can be proven later."""

    __tablename__ = "cancellation_documents"

    cancellation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contract_cancellations.id"), index=True
    )
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime]


class ContractDocument(HasId, Base):
    """A contract's PDF as it grows: revision 0 (typeset), one incremental revision per
    signing act, then the seal, the platform's stamp and the document time-stamp."""

    __tablename__ = "contract_documents"
    __table_args__ = (
        # The PDFs still growing (orders being signed, contracts whose finishing a crash
        # interrupted): what the worker's sweep looks for, among every contract's.
        Index(
            "ix_contract_documents_unfinished",
            "order_id",
            # As SQLAlchemy writes ``~complete`` in each dialect, so the planners match it.
            sqlite_where=text("complete = 0"),
            postgresql_where=text("NOT complete"),
        ),
    )

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


# What a change of these rows makes out of date among the public answers (api.core.versions):
# an order's building table and the project list (a unit's public status), and its verify
# answer (status, filing, parties, signatures).
def _order_scopes(order: ContractOrder) -> tuple[str, ...]:
    return (building_scope(order.building_id), contract_scope(order.id), PROJECTS)


def _contract_scopes(row: ContractParty | ContractSignature) -> tuple[str, ...]:
    return (contract_scope(row.order_id),)


track(ContractOrder, _order_scopes)
track(ContractParty, _contract_scopes)
track(ContractSignature, _contract_scopes)
