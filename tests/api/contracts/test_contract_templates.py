"""Contract templates: every template renders for every kind of contract and payment
method with every field filled; amounts read in capitals and figures; a document
freezes the text it was rendered from."""

from __future__ import annotations

import re

import pytest

from api.contracts import templates
from api.contracts.document_terms import TerminatedContract, TerminationTerms
from api.contracts.documents import Terms, freeze, render_text
from api.contracts.models import PaymentMethod
from api.contracts.terms import (
    PAYMENT_LABELS,
    AccountTerms,
    BuyerTerms,
    ContractTerms,
    DeveloperTerms,
    ResaleTerms,
    SealTerms,
    SellerTerms,
    UnitTerms,
)
from api.contracts.wording import area, money
from api.core.errors import DomainError

UNIT = UnitTerms(
    project="明湖花园",
    building="3栋",
    address="示范市示范区明湖路88号",
    unit="2单元",
    room_no="301",
    use="住宅",
    building_area_units=893_600,
    inner_area_units=731_250,
)
DEVELOPER = DeveloperTerms(name="示范市明湖置业有限公司", credit_code="914403001922038216")
ZHANG = BuyerTerms(
    name="张三", id_hash="a" * 64, id_number_masked="1101**********002X", share="1/2"
)
LI = BuyerTerms(name="李四", id_hash="b" * 64, id_number_masked="4401**********1234", share="1/2")
WANG = SellerTerms(name="王五", id_hash="c" * 64, id_number_masked="4301**********0011", share="")
SEAL = SealTerms(name=DEVELOPER.name, credit_code=DEVELOPER.credit_code)
# The chapters the national model contracts have, as our templates name them.
NEW_HOME_CHAPTERS = [
    "当事人",
    "基本状况",
    "价款",
    "定金",
    "交付",
    "面积差异",
    "登记",
    "违约",
    "争议",
]


def _new_home(kind: str, method: PaymentMethod, deposit: int) -> ContractTerms:
    return ContractTerms(
        contract_kind=kind,
        title="商品房买卖合同",
        unit=UNIT,
        developer=DEVELOPER,
        price_fen=2_000_000_00,
        payment_method=method.value,
        payment_method_label=PAYMENT_LABELS[method],
        deposit_fen=deposit,
        down_payment_fen=600_000_00,
        delivery_date="2028-06-30",
        parties=[ZHANG, LI, SEAL],
    )


def _title(supervised: bool, *, mortgaged: bool = False, certificate_no: str = "") -> ResaleTerms:
    return ResaleTerms(
        certificate_no=certificate_no or "示范（2024）示范区不动产权第0012345号",
        registered_on="2020-08-01",
        mortgaged=mortgaged,
        co_ownership="sole",
        co_ownership_label="单独所有",
        taxes_borne_by="buyer",
        taxes_borne_by_label="全部由买受人承担",
        funds_supervised=supervised,
        supervised_account=AccountTerms(
            bank_name="示范银行", account_name="存量房交易资金监管专户", account_number="6222"
        )
        if supervised
        else None,
        seller_account=AccountTerms(
            bank_name="示范银行老城支行", account_name="王五", account_number="6217 **** 5678"
        )
        if supervised
        else None,
    )


def _resale(
    method: PaymentMethod, supervised: bool, *, mortgaged: bool = False, certificate_no: str = ""
) -> ContractTerms:
    return ContractTerms(
        contract_kind="resale",
        title="存量房买卖合同",
        unit=UNIT,
        price_fen=1_500_000_00,
        payment_method=method.value,
        payment_method_label=PAYMENT_LABELS[method],
        deposit_fen=0,
        down_payment_fen=450_000_00,
        delivery_date="2027-03-31",
        parties=[WANG, ZHANG],
        resale=_title(supervised, mortgaged=mortgaged, certificate_no=certificate_no),
    )


def _termination(resale: bool, refund: int) -> TerminationTerms:
    return TerminationTerms(
        agreement_kind="termination",
        title="房屋买卖合同解除协议",
        contract=TerminatedContract(
            contract_number="YS202600000001",
            title="商品房买卖合同（预售）",
            document_hash="ab" * 32,
            signed_on="2026-11-23",
            unit=UNIT,
            price_fen=2_000_000_00,
        ),
        developer=None if resale else DEVELOPER,
        parties=[WANG, ZHANG] if resale else [ZHANG, LI, SEAL],
        reason="买受人家庭原因，经协商退房",
        applicants=["张三"],
        refund_fen=refund,
        agreed_on="2026-12-01",
    )


CASES: list[tuple[str, Terms]] = [
    *(
        (template_id, _new_home(kind, method, deposit))
        for template_id, kind in (("gf-2014-0171", "presale"), ("gf-2014-0172", "spot"))
        for method in PaymentMethod
        for deposit in (0, 50_000_00)
    ),
    *(("wq-resale", _resale(method, sup)) for method in PaymentMethod for sup in (True, False)),
    ("wq-resale", _resale(PaymentMethod.lump_sum, True, mortgaged=True)),
    *(
        ("wq-termination", _termination(resale, refund))
        for resale in (True, False)
        for refund in (0, 650_000_00)
    ),
]


@pytest.mark.parametrize(("template_id", "terms"), CASES)
def test_every_template_renders_every_case_with_no_empty_field(
    template_id: str, terms: Terms
) -> None:
    document = freeze(template_id, terms)
    text = document.text()
    assert text is not None and text["title"]
    clauses = [clause for chapter in text["chapters"] for clause in chapter["clauses"]]
    assert clauses and all(re.match(r"第[一二三四五六七八九十]+条　\S", c) for c in clauses)
    whole = "\n".join(clauses)
    assert "{" not in whole and "}" not in whole
    assert "（）" not in whole and "：。" not in whole and "为。" not in whole
    assert "张*" in whole and "张三" not in whole  # names masked, never the ID number
    headings = [chapter["heading"] for chapter in text["chapters"]]
    assert headings[0].startswith("第一章")
    if template_id.startswith("gf-"):
        for topic in NEW_HOME_CHAPTERS:
            assert any(topic in heading for heading in headings), topic
        assert "人民币贰佰万元整（¥2,000,000.00）" in whole
        assert terms.payment_method_label in whole  # type: ignore[union-attr]
        assert "89.36平方米" in whole and "73.1250平方米" in whole
    # The frozen document carries the template version and hash it was rendered with.
    template = templates.template(template_id)
    assert (document.template_id, document.template_version) == (template.id, template.version)
    assert document.content()["template_sha256"] == template.sha256


def test_payment_clauses_follow_the_method() -> None:
    loan = "\n".join(
        c
        for ch in render_text(
            "gf-2014-0171", _new_home("presale", PaymentMethod.commercial_loan, 0)
        )["chapters"]
        for c in ch["clauses"]
    )
    lump = "\n".join(
        c
        for ch in render_text("gf-2014-0171", _new_home("presale", PaymentMethod.lump_sum, 1))[
            "chapters"
        ]
        for c in ch["clauses"]
    )
    assert "贷款" in loan and "一次付清" not in loan and "本合同不约定定金" in loan
    assert "一次付清" in lump and "贷款机构提交" not in lump and "本合同不约定定金" not in lump


def test_amounts_read_in_capitals_and_figures() -> None:
    assert money(100_000_00) == "人民币壹拾万元整（¥100,000.00）"
    assert money(2_000_000_50) == "人民币贰佰万元伍角（¥2,000,000.50）"
    assert money(1_005_000_07) == "人民币壹佰万伍仟元零柒分（¥1,005,000.07）"
    assert money(0) == "人民币零元整（¥0.00）"
    assert area(893_600) == "89.36" and area(731_250) == "73.1250"


def test_a_template_version_is_kept_and_named_by_its_hash() -> None:
    catalogue = templates.catalogue()
    assert set(catalogue) == {"gf-2014-0171", "gf-2014-0172", "wq-resale", "wq-termination"}
    for versions in catalogue.values():
        for template in versions.values():
            assert re.fullmatch(r"[0-9a-f]{64}", template.sha256)
    presale = templates.template("gf-2014-0171", "2026.1")
    assert presale.sha256 == templates.template("gf-2014-0171").sha256  # the current one
    assert len({t.sha256 for v in catalogue.values() for t in v.values()}) == 4


def test_unknown_templates_and_empty_fields_are_refused() -> None:
    with pytest.raises(DomainError) as unknown:
        freeze("gf-1999-0000", _new_home("presale", PaymentMethod.lump_sum, 0))
    assert unknown.value.code == "template_unknown"
    with pytest.raises(DomainError) as old:
        freeze("gf-2014-0171", _new_home("presale", PaymentMethod.lump_sum, 0), version="1999.1")
    assert old.value.code == "template_unknown"
    empty = _resale(PaymentMethod.lump_sum, True, certificate_no=" ")
    with pytest.raises(DomainError) as incomplete:
        freeze("wq-resale", empty)
    assert incomplete.value.code == "contract_text_incomplete"
    with pytest.raises(TypeError):
        freeze("wq-resale", _new_home("presale", PaymentMethod.lump_sum, 0))


def test_a_resale_says_what_the_buyer_must_know_before_signing() -> None:
    """The mortgage, who bears the taxes and where the supervised money goes."""

    def text(terms: ContractTerms) -> str:
        rendered = render_text("wq-resale", terms)
        return "".join("".join(c["clauses"]) for c in rendered["chapters"])  # type: ignore[attr-defined]

    mortgaged = text(_resale(PaymentMethod.commercial_loan, True, mortgaged=True))
    assert "该房屋已设定抵押，买受人在签署本合同前已知悉" in mortgaged
    assert "因本次交易产生的税费全部由买受人承担" in mortgaged
    assert "存量房交易资金监管专户" in mortgaged and "6217 **** 5678" in mortgaged
    free = text(_resale(PaymentMethod.lump_sum, False))
    assert "出卖人保证该房屋未设定抵押" in free and "已设定抵押" not in free
    assert "房价款由买受人直接支付给出卖人" in free
