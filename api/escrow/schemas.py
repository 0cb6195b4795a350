"""Escrow request and response bodies. Money is integer fen; account numbers are masked."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from api.core.schemas import RequestBody, ResponseBody

Fen = Annotated[int, msgspec.Meta(ge=1, le=10**13)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]


class Milestone(RequestBody):
    """A construction milestone (工程进度节点), given in order of construction, and the share
    (percent) of the key supervised amount (重点监管资金) that must still stay in the account
    once it is reached: e.g. 100, 40, 0. The amount itself is computed from the rate per m²
    a regulator sets and the project's building area (seed 001 5.3), never typed."""

    code: Code
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    key_percent: Annotated[int, msgspec.Meta(ge=0, le=100)]


class NewSupervisedAccount(RequestBody):
    project_id: uuid.UUID
    bank_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    account_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    account_number: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{8,32}$")]
    milestones: Annotated[list[Milestone], msgspec.Meta(min_length=1, max_length=20)]


class AssignSuspense(RequestBody):
    notice_id: uuid.UUID


class Review(RequestBody):
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


KeyRate = Annotated[int, msgspec.Meta(ge=1, le=10**9, description="分/平方米")]


class AccountApproval(Review):
    """A regulator approves an account and may set the key amount per m² at once."""

    key_rate_fen_per_m2: KeyRate | None = None


class KeyRateBody(RequestBody):
    key_rate_fen_per_m2: KeyRate


class NewRelease(RequestBody):
    amount_fen: Fen
    milestone: Code
    note: Annotated[str, msgspec.Meta(max_length=200)] = ""


class MilestoneAnswer(ResponseBody):
    code: str
    name: str
    key_percent: int | None  # None: an account registered with fixed key amounts
    key_amount_fen: int | None  # None until a regulator sets the rate per m²


class SupervisedAccountAnswer(ResponseBody):
    id: uuid.UUID
    company_id: uuid.UUID | None  # None for the city's resale account
    project_id: uuid.UUID | None
    scope: Literal["project", "resale"]
    bank_name: str
    account_name: str
    account_number_masked: str
    milestones: list[MilestoneAnswer]
    # "computed": rate × the project's building area × each milestone's share;
    # "fixed": key amounts registered before shares existed, kept as they were.
    key_basis: Literal["computed", "fixed"]
    key_rate_fen_per_m2: int | None
    key_area: str | None  # m², the building area the amounts were computed from
    status: str
    created_at: datetime
    reviewed_at: datetime | None
    review_reason: str


class SupervisedAccountList(ResponseBody):
    items: list[SupervisedAccountAnswer]


class InstructionAnswer(ResponseBody):
    id: uuid.UUID
    kind: str
    supervised_account_id: uuid.UUID
    contract_id: uuid.UUID | None
    amount_fen: int
    milestone: str
    status: str
    requested_at: datetime
    reviewed_at: datetime | None
    reason: str
    completed_at: datetime | None


class NoticePayment(ResponseBody):
    """One payment the bank reported against a notice."""

    at: datetime
    amount_fen: int
    bank_transaction_id: str


class NoticeAnswer(ResponseBody):
    id: uuid.UUID
    contract_id: uuid.UUID
    contract_number: str
    kind: str
    due_fen: int
    paid_fen: int
    outstanding_fen: int
    overpaid_fen: int
    # unpaid | partial | paid | overpaid; closed only when paid equals due.
    status: str
    closed: bool
    refund_flagged: bool
    reference: str
    bank_name: str
    account_name: str
    account_number_masked: str
    qr_png: str  # path of the QR image that opens the bank's payment page
    # The bank's payment page for what is still due (what the QR encodes); None when
    # nothing is due or no bank page is configured.
    pay_url: str | None
    created_at: datetime
    # issue 19: the payments that arrived, when the notice was paid in full, and its
    # receipt (缴款凭证, a PDF) once it is.
    payments: list[NoticePayment] = msgspec.field(default_factory=list)
    paid_at: datetime | None = None
    receipt_pdf: str | None = None


class NoticeList(ResponseBody):
    contract_id: uuid.UUID
    items: list[NoticeAnswer]
    # Money going back to the buyers (a cancelled contract, an order that ended unsigned):
    # what the bank confirmed, and what it was instructed and has not confirmed yet.
    refunded_fen: int = 0
    refunding_fen: int = 0


class StatementEntry(ResponseBody):
    transfer_id: uuid.UUID
    at: datetime
    kind: str
    direction: Literal["in", "out"]
    amount_fen: int
    balance_fen: int
    counterpart: str
    note: str


class Balances(ResponseBody):
    bank_balance_fen: int  # what the supervised bank account holds
    held_for_contracts_fen: int
    refunds_pending_fen: int
    suspense_fen: int
    released_fen: int
    releases_pending_fen: int
    available_for_release_fen: int  # before the milestone's key supervised amount
    payouts_pending_fen: int = 0  # resale money owed to sellers, waiting for the bank


class Statement(ResponseBody):
    account: SupervisedAccountAnswer
    balances: Balances
    entries: list[StatementEntry]
    instructions: list[InstructionAnswer]


class SuspenseItem(ResponseBody):
    transfer_id: uuid.UUID
    bank_txn_id: str
    account_number_masked: str
    supervised_account_id: uuid.UUID | None
    reference: str
    amount_fen: int
    received_at: datetime
    assigned_notice_id: uuid.UUID | None = None  # set once a regulator matched it


class SuspenseList(ResponseBody):
    total_fen: int
    items: list[SuspenseItem]


# ------------------------------------------------------------------ bank webhook


class BankEventData(RequestBody):
    transaction_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    account_number: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    amount_fen: Fen
    reference: Annotated[str, msgspec.Meta(max_length=100)] = ""
    instruction_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    payer_name: Annotated[str, msgspec.Meta(max_length=100)] = ""


class BankWebhook(RequestBody):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    type: Literal["payment.received", "refund.completed", "release.completed", "payout.completed"]
    created: int
    data: BankEventData


class WebhookAnswer(ResponseBody):
    received: bool
    duplicate: bool
    transaction_id: str
    outcome: str  # applied | suspense | overpaid | refunded (the contract was cancelled)


class PendingInstructions(ResponseBody):
    """Approved instructions not yet acknowledged by the bank (the gateway's bodies)."""

    items: list[dict[str, Any]]


class InstructionAck(RequestBody):
    bank_reference: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
