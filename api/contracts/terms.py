"""The terms of a contract order, typed: what the sales office filled in, frozen into the
canonical document when the order is issued (and hashed and signed from then on).

Stored as JSON in ``ContractOrder.terms_json``; ``ContractTerms.to_document()`` is exactly
what ``signing.canonical`` hashes, so a field here is a field of the signed document.
"""

from __future__ import annotations

from typing import Any

import msgspec

from api.contracts.models import ContractOrder, PaymentMethod
from api.core.errors import DomainError

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
    def to_json(self) -> str:
        return msgspec.json.encode(self).decode()

    def to_document(self) -> dict[str, Any]:
        """The terms as the canonical document carries them."""
        return msgspec.to_builtins(self)


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
    share: str  # co-ownership share, "" for a sole buyer or joint owners
    id_type: str = "resident_id"  # the identity document (api.core.validators.IdType)


class SellerTerms(_Terms, tag="seller", tag_field="role"):
    """A seller of a resale: an owner on the title, named like a buyer."""

    name: str
    id_hash: str
    id_number_masked: str
    share: str
    id_type: str = "resident_id"


class SealTerms(_Terms, tag="seal", tag_field="role"):
    """The developer, who signs with the company seal."""

    name: str
    credit_code: str


PartyTerms = BuyerTerms | SealTerms | SellerTerms

RESALE_TEMPLATE = "wq-resale"
RESALE_TITLE = "存量房买卖合同"
CO_OWNERSHIP_LABELS = {"sole": "单独所有", "joint": "共同共有", "by_share": "按份共有"}
TAX_BEARER_LABELS = {
    "by_law": "按照国家和当地的规定由各方分别承担",
    "buyer": "全部由买受人承担",
    "seller": "全部由出卖人承担",
}


class AccountTerms(_Terms):
    """A bank account a contract names: where the buyer pays, or where the seller is paid."""

    bank_name: str
    account_name: str
    account_number: str  # masked for a person's account, in full for the city's


class ResaleTerms(_Terms):
    """What a resale contract says beyond a new home's: the title sold, what burdens it,
    how the buyers will own it, who bears taxes and fees, and where the money goes."""

    certificate_no: str  # 不动产权证号
    registered_on: str  # ISO date
    mortgaged: bool  # 已抵押: the buyer reads this before signing
    co_ownership: str  # sole, joint (共同共有) or by_share (按份共有), of the buyers
    co_ownership_label: str
    taxes_borne_by: str  # by_law, buyer or seller
    taxes_borne_by_label: str
    funds_supervised: bool  # 是否选择监管交易资金
    supervised_account: AccountTerms | None  # the city's resale account, when supervised
    seller_account: AccountTerms | None  # where the money is released, when supervised


class ContractTerms(_Terms, omit_defaults=True):
    """A new home's (with its developer) or a resale's (with ``resale``); what one kind
    does not have is left out of the document, not written as null."""

    contract_kind: str
    title: str
    unit: UnitTerms
    price_fen: int
    payment_method: str
    payment_method_label: str
    deposit_fen: int
    down_payment_fen: int
    delivery_date: str  # ISO date
    parties: list[PartyTerms]
    developer: DeveloperTerms | None = None
    resale: ResaleTerms | None = None

    @property
    def seller_label(self) -> str:
        """Who sells, as the parties' pages name them: the developer, or the owners."""
        if self.developer is not None:
            return self.developer.name
        return "、".join(p.name for p in self.parties if isinstance(p, SellerTerms))


def terms_of(order: ContractOrder) -> ContractTerms:
    return msgspec.json.decode(order.terms_json, type=ContractTerms)


def developer_of(order: ContractOrder) -> DeveloperTerms:
    """The developer who seals a new home's contract; a resale has none to seal it."""
    developer = terms_of(order).developer
    if developer is None:
        raise DomainError("seal_not_applicable", "存量房合同由买卖双方签署，无需盖章。")
    return developer


# The termination agreement (解除协议) every party signs to cancel a contract; its terms
# are ``document_terms.TerminationTerms``.
TERMINATION_TEMPLATE = "wq-termination"
