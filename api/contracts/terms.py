"""The terms of a contract order, typed: what the sales office filled in, frozen into the
canonical document when the order is issued (and hashed and signed from then on).

Stored as JSON in ``ContractOrder.terms_json``; ``ContractTerms.to_document()`` is exactly
what ``signing.canonical`` hashes, so a field here is a field of the signed document.
"""

from __future__ import annotations

from typing import Any

import msgspec

from api.contracts.models import ContractOrder, PaymentMethod

TEMPLATES = {
    "gf-2014-0171": "商品房买卖合同（预售）示范文本",
    "gf-2014-0172": "商品房买卖合同（现售）示范文本",
}
PAYMENT_LABELS = {
    PaymentMethod.lump_sum: "一次性付款",
    PaymentMethod.installments: "分期付款",
    PaymentMethod.commercial_loan: "商业贷款",
    PaymentMethod.provident_fund_loan: "公积金贷款",
    PaymentMethod.combined_loan: "组合贷款",
}


class _Terms(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class UnitTerms(_Terms):
    project: str
    building: str
    address: str
    unit: str  # 单元
    room_no: str
    use: str
    building_area_units: int  # 0.0001 m², from the survey
    inner_area_units: int


class DeveloperTerms(_Terms):
    name: str
    credit_code: str


class BuyerTerms(_Terms, tag="buyer", tag_field="role"):
    """A buyer as the document names them: the ID number only masked and as a keyed hash."""

    name: str
    id_hash: str
    id_number_masked: str
    share: str  # co-ownership share, "" for a sole buyer


class SealTerms(_Terms, tag="seal", tag_field="role"):
    """The developer, who signs with the company seal."""

    name: str
    credit_code: str


PartyTerms = BuyerTerms | SealTerms


class ContractTerms(_Terms):
    contract_kind: str
    title: str
    unit: UnitTerms
    developer: DeveloperTerms
    price_fen: int
    payment_method: str
    payment_method_label: str
    deposit_fen: int
    down_payment_fen: int
    delivery_date: str  # ISO date
    parties: list[PartyTerms]

    def to_json(self) -> str:
        return msgspec.json.encode(self).decode()

    def to_document(self) -> dict[str, Any]:
        """The terms as the canonical document carries them."""
        return msgspec.to_builtins(self)


def terms_of(order: ContractOrder) -> ContractTerms:
    return msgspec.json.decode(order.terms_json, type=ContractTerms)
