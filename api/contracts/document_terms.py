"""The typed terms of the documents besides a new-home contract (``terms.ContractTerms``):
a resale contract (存量房买卖合同) and a termination agreement (解除协议) that ends a
signed contract on cancellation (退房).

Like ``ContractTerms``, each is frozen as the ``terms`` of a canonical document by
``api.contracts.documents.freeze``, and each names its signers in ``parties`` (a seller
or buyer by name, keyed ID hash and masked ID number; the developer by its seal), which
is what the evidence bundle and the PDF's signature page are built from.
"""

from __future__ import annotations

from api.contracts.terms import BuyerTerms, DeveloperTerms, SealTerms, UnitTerms, _Terms


class SellerTerms(_Terms, tag="seller", tag_field="role"):
    """A person selling a home they own (resale); named like a buyer."""

    name: str
    id_hash: str
    id_number_masked: str
    share: str  # their share of the title, "" for a sole owner


ResalePartyTerms = SellerTerms | BuyerTerms
AgreementPartyTerms = BuyerTerms | SellerTerms | SealTerms


class ResaleTerms(_Terms):
    """A resale contract: the sellers (owners on the title) sell the unit to the buyers."""

    contract_kind: str  # "resale"
    title: str
    unit: UnitTerms
    title_certificate: str  # 不动产权证书号 of the sellers' title
    price_fen: int
    payment_method: str
    payment_method_label: str
    deposit_fen: int
    down_payment_fen: int
    funds_supervised: bool  # the parties chose to pay through a supervised account
    delivery_date: str  # ISO date
    parties: list[ResalePartyTerms]


class TerminatedContract(_Terms):
    """The signed contract a termination agreement ends, as that contract named it."""

    contract_number: str
    title: str  # e.g. "商品房买卖合同（预售）"
    document_hash: str  # SHA-256 of the contract's canonical document
    signed_on: str  # ISO date (Asia/Shanghai) the contract was signed
    unit: UnitTerms
    price_fen: int


class TerminationTerms(_Terms):
    """The terms of a termination agreement (解除协议), what a cancellation freezes.

    - ``contract``: the contract ended (its number, unit, price and document hash);
    - ``parties``: who signs: every buyer and the developer's seal for a new home, or
      every seller and buyer for a resale (the same people who signed the contract);
    - ``developer``: the developer for a new home, None for a resale;
    - ``reason``: why, in the parties' words (退房原因);
    - ``refund_fen``: what is paid back to the buyers from supervised funds, 0 if nothing;
    - ``agreed_on``: the agreement's date (ISO date, Asia/Shanghai).
    """

    agreement_kind: str  # "termination"
    title: str
    contract: TerminatedContract
    developer: DeveloperTerms | None
    parties: list[AgreementPartyTerms]
    reason: str
    refund_fen: int
    agreed_on: str
