"""Contract order bodies in and out. ID numbers and phones only ever go out masked."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

import msgspec

from api.contracts.models import ContractKind, OrderStatus, PaymentMethod
from api.core.schemas import RequestBody, ResponseBody
from api.outbox.schemas import NotificationEntry

Fen = Annotated[int, msgspec.Meta(ge=0, le=10**13)]


class BuyerIn(RequestBody):
    name: Annotated[str, msgspec.Meta(min_length=2, max_length=30)]
    id_number: Annotated[str, msgspec.Meta(min_length=15, max_length=20)]
    phone: Annotated[str, msgspec.Meta(min_length=11, max_length=16)]
    share: Annotated[str, msgspec.Meta(max_length=16)] = ""  # co-ownership share, e.g. "1/2"


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


class Reason(RequestBody):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


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
    expires_at: datetime | None
    contract_number: str | None
    created_at: datetime
    issued_at: datetime | None
    completed_at: datetime | None
    ended_at: datetime | None
    end_reason: str
    parties: list[PartyAnswer]
    my_party_id: uuid.UUID | None = None


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
    document: dict[str, Any]
    document_hash: str


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
    password: str  # this buyer sees it once; then only the SMS has it


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


class DocumentOpened(RequestBody):
    document_hash: Annotated[str, msgspec.Meta(min_length=64, max_length=64)]


class OpenedAnswer(ResponseBody):
    document_hash: str
    opened_at: datetime
