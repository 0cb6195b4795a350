"""How terms read inside a contract's text: money in capitals and figures (人民币壹拾万元整
（¥100,000.00）), areas in m², dates in Chinese, parties masked, and the flags that pick a
template's optional clauses (payment method, deposit, kind of contract, refund).

Each ``*_fields`` function answers ``(fields, flags)`` for one terms type; a template's
``{name}`` placeholders are filled from ``fields`` (every value non-empty), and a clause
marked ``when = "flag"`` appears only when ``flag`` is in ``flags``.
"""

from __future__ import annotations

from datetime import date

import cn2an

from api.contracts.document_terms import TerminationTerms
from api.contracts.terms import (
    AccountTerms,
    BuyerTerms,
    ContractTerms,
    SealTerms,
    SellerTerms,
    UnitTerms,
)
from signing.pii import mask_name

LOANS = {"commercial_loan", "provident_fund_loan", "combined_loan"}


def room_label(building: str, unit: str, room_no: str) -> str:
    """A flat as people write it: ``1栋2单元603室`` (the register keeps the 单元 as "2" and
    the room as "603"; a building without 单元 reads ``3栋101室``)."""
    unit = unit.strip()
    unit_part = f"{unit}单元" if unit and not unit.endswith("单元") else unit
    room = room_no if room_no.endswith("室") else f"{room_no}室"
    return f"{building.strip()}{unit_part}{room}"


def sms_building(building: str, unit: str) -> str:
    """The SMS templates' ``${building}`` (their wording puts ``，${room}室`` after it)."""
    unit = unit.strip()
    return building + (f"{unit}单元" if unit and not unit.endswith("单元") else unit)


def money(fen: int) -> str:
    """``人民币壹拾万元整（¥100,000.00）``: the capitals a contract must carry, and figures."""
    if fen < 0:
        raise ValueError("amounts in a contract are not negative")
    yuan, cents = divmod(fen, 100)
    words = "零元整" if fen == 0 else cn2an.an2cn(f"{yuan}.{cents:02d}", "rmb")
    return f"人民币{words}（¥{yuan:,}.{cents:02d}）"


def area(units: int) -> str:
    """Survey areas are integers of 0.0001 m²; printed with two decimals when exact."""
    whole, rest = divmod(units, 10_000)
    decimals = f"{rest // 100:02d}" if rest % 100 == 0 else f"{rest:04d}"
    return f"{whole}.{decimals}"


def chinese_date(iso: str) -> str:
    day = date.fromisoformat(iso)
    return f"{day.year}年{day.month}月{day.day}日"


def _person(party: BuyerTerms | SellerTerms) -> str:
    share = f"，共有份额 {party.share}" if party.share else ""
    return f"{mask_name(party.name)}（证件号码 {party.id_number_masked}{share}）"


def _people(parties: list[BuyerTerms | SellerTerms]) -> str:
    return "；".join(_person(p) for p in parties) or "—"


def _unit_fields(unit: UnitTerms) -> dict[str, str]:
    place = room_label(unit.building, unit.unit, unit.room_no)
    return {
        "project": unit.project,
        # The register may lack a building's street address: its project and name locate it.
        "address": unit.address or f"{unit.project}{unit.building}",
        "property": f"{unit.project}{place}",
        "room_no": unit.room_no,
        "use": unit.use,
        "building_area": area(unit.building_area_units),
        "inner_area": area(unit.inner_area_units),
        "shared_area": area(max(unit.building_area_units - unit.inner_area_units, 0)),
    }


def _payment_fields(terms: ContractTerms) -> tuple[dict[str, str], set[str]]:
    """Price, payment method, deposit and down payment (both kinds of sale name them alike)."""
    price_fen, deposit_fen = terms.price_fen, terms.deposit_fen
    down_fen, method = terms.down_payment_fen, terms.payment_method
    area_units = terms.unit.building_area_units
    fields = {
        "price": money(price_fen),
        "payment_method": terms.payment_method_label,
        "deposit": money(deposit_fen),
        "down_payment": money(down_fen),
        "balance": money(price_fen - deposit_fen - down_fen),
    }
    if area_units > 0:
        per_m2 = price_fen * 10_000 // area_units
        fields["unit_price"] = money(per_m2)
    flags = {f"payment:{method}"}
    flags.add("loan" if method in LOANS else method)
    flags.add("deposit" if deposit_fen else "no_deposit")
    flags.add("down_payment" if down_fen else "no_down_payment")
    return fields, flags


def contract_fields(terms: ContractTerms) -> tuple[dict[str, str], set[str]]:
    """A new-home contract (presale or spot)."""
    buyers = [p for p in terms.parties if isinstance(p, BuyerTerms)]
    if terms.developer is None:
        raise TypeError("a new-home contract names its developer")
    fields = {
        **_unit_fields(terms.unit),
        "developer": terms.developer.name,
        "developer_code": terms.developer.credit_code,
        "buyers": _people(list(buyers)),
        "buyer_count": str(len(buyers)),
        "delivery_date": chinese_date(terms.delivery_date),
    }
    payment, flags = _payment_fields(terms)
    fields.update(payment)
    flags |= {f"kind:{terms.contract_kind}", "several_buyers" if len(buyers) > 1 else "one_buyer"}
    return fields, flags


def _account(account: AccountTerms | None) -> str:
    if account is None:
        return "—"
    return f"{account.bank_name}，户名{account.account_name}，账号{account.account_number}"


def resale_fields(terms: ContractTerms) -> tuple[dict[str, str], set[str]]:
    """A resale contract between the owners on the title and the buyers."""
    resale = terms.resale
    if resale is None:
        raise TypeError("a resale contract names its title")
    sellers = [p for p in terms.parties if isinstance(p, SellerTerms)]
    buyers = [p for p in terms.parties if isinstance(p, BuyerTerms)]
    fields = {
        **_unit_fields(terms.unit),
        "sellers": _people(list(sellers)),
        "buyers": _people(list(buyers)),
        "title_certificate": resale.certificate_no,
        "registered_on": chinese_date(resale.registered_on),
        "co_ownership": resale.co_ownership_label,
        "taxes_borne_by": resale.taxes_borne_by_label,
        "supervised_account": _account(resale.supervised_account),
        "seller_account": _account(resale.seller_account),
        "delivery_date": chinese_date(terms.delivery_date),
    }
    payment, flags = _payment_fields(terms)
    fields.update(payment)
    flags |= {"kind:resale", "supervised" if resale.funds_supervised else "unsupervised"}
    flags.add("several_buyers" if len(buyers) > 1 else "one_buyer")
    flags.add("mortgaged" if resale.mortgaged else "unencumbered")
    return fields, flags


def termination_fields(terms: TerminationTerms) -> tuple[dict[str, str], set[str]]:
    """A termination agreement (解除协议) of a signed contract."""
    contract = terms.contract
    buyers = [p for p in terms.parties if isinstance(p, BuyerTerms)]
    sellers = [p for p in terms.parties if isinstance(p, SellerTerms)]
    seal = next((p for p in terms.parties if isinstance(p, SealTerms)), None)
    if seal is not None:
        seller_text = f"{seal.name}（统一社会信用代码 {seal.credit_code}）"
    else:
        seller_text = _people(list(sellers))
    fields = {
        **_unit_fields(contract.unit),
        "contract_number": contract.contract_number,
        "contract_title": contract.title,
        "contract_hash": contract.document_hash,
        "signed_on": chinese_date(contract.signed_on),
        "price": money(contract.price_fen),
        "sellers": seller_text,
        "buyers": _people(list(buyers)),
        "reason": terms.reason.strip() or "—",
        "applicants": "、".join(mask_name(name) for name in terms.applicants) or "—",
        "refund": money(terms.refund_fen),
        "agreed_on": chinese_date(terms.agreed_on),
    }
    if contract.filing_number:
        fields["filing_number"] = contract.filing_number
    flags = {
        "new_home" if seal is not None else "resale",
        "refund" if terms.refund_fen else "no_refund",
        "filed" if contract.filing_number else "not_filed",
    }
    return fields, flags
