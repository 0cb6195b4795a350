"""The typed terms of the document besides a contract (``terms.ContractTerms``, a new
home's or a resale's): the termination agreement (解除协议 / 注销协议) that ends a signed
contract on cancellation (退房, 注销).

Like ``ContractTerms``, it is frozen as the ``terms`` of a canonical document by
``api.contracts.documents.freeze``, and names its signers in ``parties`` (a seller or
buyer by name, keyed ID hash and masked ID number; the developer by its seal), which is
what the evidence bundle is built from.
"""

from __future__ import annotations

from api.contracts.terms import (
    BuyerTerms,
    DeveloperTerms,
    SealTerms,
    SellerTerms,
    UnitTerms,
    _Terms,
)

AgreementPartyTerms = BuyerTerms | SellerTerms | SealTerms


class TerminatedContract(_Terms):
    """The signed contract a termination agreement ends, as that contract named it."""

    contract_number: str
    title: str  # e.g. "商品房买卖合同（预售）"
    document_hash: str  # SHA-256 of the contract's canonical document
    signed_on: str  # ISO date (Asia/Shanghai) the contract was signed
    unit: UnitTerms
    price_fen: int
    filing_number: str = ""  # 备案号, when the regulator filed it


class TerminationTerms(_Terms):
    """The terms of a termination agreement (解除协议), what a cancellation freezes.

    - ``contract``: the contract ended (its number, unit, price and document hash);
    - ``parties``: who signs: every buyer and the developer's seal for a new home, or
      every seller and buyer for a resale (the same people who signed the contract);
    - ``developer``: the developer for a new home, None for a resale;
    - ``reason``: why, in the parties' words (退房原因), and who applied (申请注销人);
    - ``refund_fen``: what is paid back to the buyers from supervised funds, 0 if nothing;
    - ``agreed_on``: the agreement's date (ISO date, Asia/Shanghai).
    """

    agreement_kind: str  # "termination"
    title: str
    contract: TerminatedContract
    developer: DeveloperTerms | None
    parties: list[AgreementPartyTerms]
    reason: str
    applicants: list[str]  # who applied (申请注销人), by name
    refund_fen: int
    agreed_on: str
