"""Contract order bodies in and out. ID numbers and phones only ever go out masked."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from api.contracts.models import CancellationStatus, ContractKind, OrderStatus, PaymentMethod
from api.contracts.terms import ResaleTerms
from api.core.schemas import RequestBody, ResponseBody
from api.core.validators import IdType
from api.outbox.schemas import NotificationEntry

Fen = Annotated[int, msgspec.Meta(ge=0, le=10**13)]


class CoOwnership(enum.StrEnum):
    sole = "sole"  # 单独所有
    joint = "joint"  # 共同共有
    by_share = "by_share"  # 按份共有: each buyer's share given


class TaxBearer(enum.StrEnum):
    by_law = "by_law"  # each side pays what the law puts on it
    buyer = "buyer"
    seller = "seller"


class BuyerIn(RequestBody):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
    id_number: Annotated[str, msgspec.Meta(min_length=5, max_length=20)]
    phone: Annotated[str, msgspec.Meta(min_length=11, max_length=16)]
    share: Annotated[str, msgspec.Meta(max_length=16)] = ""  # co-ownership share, e.g. "1/2"
    id_type: IdType = IdType.resident_id  # the identity document (居民身份证 by default)


class NewOrder(RequestBody):
    unit_id: uuid.UUID
    kind: ContractKind
    buyers: Annotated[list[BuyerIn], msgspec.Meta(min_length=1, max_length=6)]
    price_fen: Annotated[int, msgspec.Meta(gt=0, le=10**13)]
    payment_method: PaymentMethod
    delivery_date: date
    deposit_fen: Fen = 0
    down_payment_fen: Fen = 0
    template: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "gf-2014-0171"


class TitleCheckIn(RequestBody):
    """房源验证: the number on the title (房产证号 or 不动产权证号) and its check code."""

    certificate_no: Annotated[str, msgspec.Meta(min_length=4, max_length=64)]
    check_code: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]


class TitleOwnerAnswer(ResponseBody):
    name: str  # masked
    id_number_masked: str
    share: str
    me: bool


class TitleAnswer(ResponseBody):
    title_id: uuid.UUID
    certificate_no: str
    registered_on: date
    unit_id: uuid.UUID
    address: str
    project: str
    building: str
    room_no: str
    building_area: str  # m², two decimals
    use: str
    owners: list[TitleOwnerAnswer]
    mortgaged: bool  # 已抵押: may be sold; the contract says so
    restrictions: list[str]  # what is recorded on it that does not stop a sale
    live_order_id: uuid.UUID | None  # an order already holding it, if it is mine
    label: str = ""  # the flat as people write it: 明湖花园1栋2单元603室


class SellerAccountIn(RequestBody):
    """Where the supervised money goes once the title is transferred (in the sellers' name)."""

    bank_name: Annotated[str, msgspec.Meta(min_length=2, max_length=60)]
    account_number: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{8,30}$")]


class NewResaleOrder(RequestBody):
    """The contract a seller fills in for their title (seed 004 四、五)."""

    title_id: uuid.UUID
    buyers: Annotated[list[BuyerIn], msgspec.Meta(min_length=1, max_length=6)]
    # Every owner on the title signs: their phones in the title's order ("" for mine).
    seller_phones: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=16)]], msgspec.Meta(max_length=10)
    ]
    price_fen: Annotated[int, msgspec.Meta(gt=0, le=10**13)]
    payment_method: PaymentMethod
    delivery_date: date
    taxes_borne_by: TaxBearer
    funds_supervised: bool  # 是否选择监管交易资金 (the seed recommends yes)
    co_ownership: CoOwnership = CoOwnership.sole  # of several buyers: joint or by_share
    deposit_fen: Fen = 0
    down_payment_fen: Fen = 0
    seller_account: SellerAccountIn | None = None  # required when the funds are supervised


class Reason(RequestBody):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class FilingNote(RequestBody):
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Scan(RequestBody):
    scene: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class SignIn(RequestBody):
    challenge_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]


class SealIn(RequestBody):
    challenge_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    totp_code: Annotated[str, msgspec.Meta(max_length=16)] | None = None


class PartyAnswer(ResponseBody):
    id: uuid.UUID
    role: str
    name: str
    id_number_masked: str
    phone_masked: str
    share: str
    bound: bool
    signed_at: datetime | None
    declined_at: datetime | None


class UnitAnswer(ResponseBody):
    id: uuid.UUID
    project: str
    building: str
    room_no: str
    unit: str = ""  # 单元, as the register keeps it ("2")
    label: str = ""  # the flat as people write it: 明湖花园1栋2单元603室


class ScenePreview(ResponseBody):
    """A scanned link before logging in: the flat, the document, and whether it is open
    (open | expired | voided | closed | signed, with the reason in Chinese)."""

    kind: Literal["contract", "cancellation"]
    contract_kind: ContractKind
    title: str
    unit: UnitAnswer
    state: Literal["open", "expired", "voided", "closed", "signed"]
    message: str | None
    expires_at: datetime | None


class OrderAnswer(ResponseBody):
    id: uuid.UUID
    status: OrderStatus
    kind: ContractKind
    unit: UnitAnswer
    company: str
    price_fen: int
    payment_method: PaymentMethod
    deposit_fen: int
    down_payment_fen: int
    delivery_date: date
    template: str
    document_hash: str | None
    scene: str | None
    expires_at: datetime | None  # when it ends by itself (a draft, an issued order)
    contract_number: str | None
    business_number: str | None  # 网签业务宗号, from the issue
    filing_number: str | None  # 备案号
    filing_submitted_at: datetime | None
    filed_at: datetime | None
    filing_rejection_reason: str  # the regulator's, when sent back (备案退回)
    filing_note: str  # the company's, when resubmitted
    created_at: datetime
    issued_at: datetime | None
    completed_at: datetime | None
    ended_at: datetime | None
    end_reason: str
    parties: list[PartyAnswer]
    my_party_id: uuid.UUID | None = None
    resale: ResaleTerms | None = None  # the title, co-ownership, taxes, supervision
    transfer_registered_at: datetime | None = None  # resale: 转移登记完成
    # The total price as the contract writes it: 人民币贰佰万元整（¥2,000,000.00）.
    price_words: str = ""


class Submitted(ResponseBody):
    """A resale submitted by its seller: the contract is signed (已签约)."""

    order: OrderAnswer
    contract_number: str
    password: str  # shown once, like a sealed contract's; every party gets it by SMS


class SignatureTask(ResponseBody):
    """我的签署: an order or a cancellation waiting for my signature."""

    kind: str  # contract or cancellation
    order_id: uuid.UUID
    cancellation_id: uuid.UUID | None
    scene: str  # what the QR would have carried: open it without scanning
    role: str
    unit: UnitAnswer
    contract_kind: ContractKind
    contract_number: str | None
    expires_at: datetime | None


class SignatureTasks(ResponseBody):
    items: list[SignatureTask]


class OrderList(ResponseBody):
    items: list[OrderAnswer]
    total: int


class Issued(ResponseBody):
    order: OrderAnswer
    scene: str
    scan_url: str
    qr_png_url: str
    qr_svg_url: str
    expires_at: datetime


class ScanAnswer(ResponseBody):
    order: OrderAnswer
    party_id: uuid.UUID
    role: str
    document: dict[str, Any]  # the contract, or the termination agreement of a cancellation
    document_hash: str
    cancellation_id: uuid.UUID | None = None  # set when the scene was a cancellation's


class ChallengeAnswer(ResponseBody):
    challenge_id: str
    sent: bool
    expires_in: int
    resend_after: int
    phone_masked: str
    document_hash: str


class Signed(ResponseBody):
    order: OrderAnswer
    party_id: uuid.UUID
    signed_at: datetime


class PasswordOnce(ResponseBody):
    contract_number: str
    password: str  # answered no-store: never kept by the idempotency store
    shown_before: bool = False  # shown again after a fresh SMS code


class PasswordCode(RequestBody):
    """The SMS code that shows a contract password again."""

    challenge_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]


class PasswordChallenge(ResponseBody):
    challenge_id: str
    sent: bool
    expires_in: int
    resend_after: int
    phone_masked: str


class Sealed(ResponseBody):
    order: OrderAnswer
    contract_number: str
    # Shown once: stored only as a keyed hash; sent to every buyer by SMS.
    password: str


class EventAnswer(ResponseBody):
    index: int
    type: str
    actor: str
    at: datetime
    detail: dict[str, Any]
    hash: str


class EventList(ResponseBody):
    events: list[EventAnswer]
    # Messages sent about this contract (SMS, WeChat), with their delivery state.
    notifications: list[NotificationEntry]


class DocumentAnswer(ResponseBody):
    document_hash: str
    canonical_json: str
    document: dict[str, Any]


class NewCancellation(RequestBody):
    """退房 / 合同注销: why, and which buyers apply (申请注销人; all buyers when empty and an
    agent starts it, the starting buyer when a buyer does)."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    applicants: Annotated[list[uuid.UUID], msgspec.Meta(max_length=6)] = msgspec.field(
        default_factory=list
    )


class CancellationSigner(ResponseBody):
    party_id: uuid.UUID | None  # None for the company seal
    role: str
    name: str  # masked
    signed_at: datetime | None


class CancellationDocumentAnswer(ResponseBody):
    id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime


class CancellationAnswer(ResponseBody):
    id: uuid.UUID
    order_id: uuid.UUID
    contract_number: str
    unit: UnitAnswer
    status: CancellationStatus
    reason: str
    applicants: list[str]  # masked names
    started_by: str
    started_by_me: bool  # the caller started it: they submit it (resale) or withdraw it
    document_hash: str
    signers: list[CancellationSigner]
    documents: list[CancellationDocumentAnswer]
    decision_reason: str
    created_at: datetime
    ended_at: datetime | None
    scene: str | None = None  # for the parties and the company, while it is being signed
    scan_url: str | None = None


class CancellationList(ResponseBody):
    items: list[CancellationAnswer]
    total: int


class CancellationSigned(ResponseBody):
    cancellation: CancellationAnswer
    signed_at: datetime


class DocumentOpened(RequestBody):
    document_hash: Annotated[str, msgspec.Meta(min_length=64, max_length=64)]


class OpenedAnswer(ResponseBody):
    document_hash: str
    opened_at: datetime
