"""Identity documents beyond the mainland resident card (seed 004: 港澳台人士、外国人士 may sign).

Numbers are built the way the issuing authorities build them:

- 居民身份证 (GB 11643): 6-digit address code (first digit 1-8), birth date YYYYMMDD,
  3-digit sequence, ISO 7064 MOD 11-2 check character (0-9 or X).
- 港澳台居民居住证: the same layout and check character, with the address code 810000
  (Hong Kong), 820000 (Macao) or 830000 (Taiwan).
- 外国人永久居留身份证, 2023 edition: 18 characters, "9", a 2-digit code of the accepting
  province, a 3-digit nationality code, birth date YYYYMMDD, a 3-digit sequence and the
  same MOD 11-2 check character.
- 港澳居民来往内地通行证: H (Hong Kong) or M (Macao) and the holder's 8-digit lifelong
  number (the card of 1999-2012 added 2 digits counting renewals).
- 台湾居民来往大陆通行证 (card since 2015): the holder's 8-digit lifelong number.
- 护照: letters and digits, as printed.
"""

from __future__ import annotations

from datetime import date

import pytest

from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.validators import (
    ID_TYPE_LABELS,
    IdType,
    birth_date_of,
    canonical_id_number,
    checked_id_document,
    id_document_problem,
    is_minor,
)
from signing.gb_codes import resident_id_check_char
from signing.pii import FIELD_ID_NUMBER, id_number_index

TODAY = date(2026, 11, 23)  # the test clock's business day (tests/conftest.py START)
GB11643_TYPES = (
    IdType.resident_id,
    IdType.hmt_residence_permit,
    IdType.foreign_permanent_residence,
)
UNDATED_TYPES = (IdType.hk_macao_permit, IdType.taiwan_permit, IdType.passport)


def gb11643(body17: str) -> str:
    """A number of the GB 11643 layout with its check character."""
    assert len(body17) == 17 and body17.isdigit()
    return body17 + resident_id_check_char(body17)


def wrong_check(number: str) -> str:
    """The same number with any other check character."""
    other = "0" if number[-1] != "0" else "1"
    return number[:-1] + other


def resident(born: str, address: str = "110105", sequence: str = "123") -> str:
    return gb11643(address + born + sequence)


def hmt_permit(born: str, region: str = "810000", sequence: str = "123") -> str:
    return gb11643(region + born + sequence)


def foreigner(
    born: str, province: str = "31", nationality: str = "840", sequence: str = "001"
) -> str:
    """2023 edition: 9, accepting province, nationality code, birth date, sequence, check."""
    return gb11643("9" + province + nationality + born + sequence)


# Numbers that are right for their type, printed as on the document.
VALID = [
    (IdType.resident_id, resident("19900307")),
    (IdType.resident_id, "11010519491231002X"),  # the worked example of GB 11643-1999
    (IdType.hmt_residence_permit, hmt_permit("19850615", "810000")),  # Hong Kong
    (IdType.hmt_residence_permit, hmt_permit("19850615", "820000")),  # Macao
    (IdType.hmt_residence_permit, hmt_permit("19850615", "830000")),  # Taiwan
    (IdType.foreign_permanent_residence, foreigner("19800101")),  # Shanghai, USA
    (IdType.foreign_permanent_residence, foreigner("19751120", "11", "826")),  # Beijing, UK
    (IdType.foreign_permanent_residence, foreigner("19690704", "44", "392")),  # Guangdong, Japan
    (IdType.hk_macao_permit, "H12345678"),
    (IdType.hk_macao_permit, "M87654321"),
    (IdType.hk_macao_permit, "H1234567801"),  # 1999-2012 card: lifelong number + renewals
    (IdType.taiwan_permit, "01234567"),
    (IdType.taiwan_permit, "87654321"),
    (IdType.passport, "E12345678"),  # PRC ordinary passport
    (IdType.passport, "EA1234567"),  # PRC passport, second letter series
    (IdType.passport, "K12345678"),  # HKSAR passport
    (IdType.passport, "561234567"),  # United States: 9 digits
    (IdType.passport, "C01X00T47"),  # Germany: letters and digits
    (IdType.passport, "12AB34567"),  # France
    (IdType.passport, "N1234"),  # shortest accepted
    (IdType.passport, "A" * 16 + "1"),  # longest accepted (17)
]


def test_every_document_type_has_a_label_and_stable_values() -> None:
    # The values travel in requests, answers and stored rows: they are a contract.
    assert {t.value for t in IdType} == {
        "resident_id",
        "hmt_residence_permit",
        "foreign_permanent_residence",
        "hk_macao_permit",
        "taiwan_permit",
        "passport",
    }
    assert set(ID_TYPE_LABELS) == set(IdType)
    assert ID_TYPE_LABELS[IdType.resident_id] == "居民身份证"
    assert ID_TYPE_LABELS[IdType.passport] == "护照"
    assert len(set(ID_TYPE_LABELS.values())) == len(IdType)  # no two documents read alike


@pytest.mark.parametrize(("id_type", "number"), VALID)
def test_valid_numbers_are_accepted(id_type: IdType, number: str) -> None:
    assert id_document_problem(id_type, number, today=TODAY) is None
    assert id_document_problem(id_type, number) is None
    assert checked_id_document(id_type, number, today=TODAY) == canonical_id_number(id_type, number)


def test_one_document_has_one_spelling() -> None:
    """An old 11-character HK/Macao permit number is stored without its 2 renewal digits,
    and full-width characters as ASCII, so one holder has one keyed lookup."""
    hk = IdType.hk_macao_permit
    assert checked_id_document(hk, "H1234567801", today=TODAY) == "H12345678"
    assert checked_id_document(hk, "ｈ１２３４５６７８", today=TODAY) == "H12345678"
    assert checked_id_document(IdType.taiwan_permit, "１２３４５６７８", today=TODAY) == (
        "12345678"
    )
    assert checked_id_document(IdType.passport, "Ｅ１２３４５６７８", today=TODAY) == "E12345678"


def test_the_2017_foreigner_card_is_still_accepted_and_has_no_birth_date_we_read() -> None:
    kind = IdType.foreign_permanent_residence
    assert checked_id_document(kind, "usa440501021234", today=TODAY) == "USA440501021234"
    assert birth_date_of(kind, "USA440501021234") is None
    assert not is_minor(kind, "USA440501021234", today=TODAY)
    for wrong in ("US4405010212345", "USA44050102123", "USA4405010212345"):
        assert id_document_problem(kind, wrong, today=TODAY) == "format"


def iso7064_mod11_2_holds(number: str) -> bool:
    """The verification equation of ISO 7064 MOD 11-2, written independently of the
    code under test: the weighted sum of all 18 characters (X = 10) is 1 modulo 11."""
    values = [10 if char == "X" else int(char) for char in number]
    return sum(v * pow(2, 17 - i, 11) for i, v in enumerate(values)) % 11 == 1


def test_the_built_numbers_have_the_real_layout() -> None:
    permit = hmt_permit("19850615", "830000", "456")
    assert len(permit) == 18 and permit.startswith("830000") and permit[6:14] == "19850615"
    card = foreigner("19800101", "31", "840", "001")
    assert len(card) == 18 and card[0] == "9" and card[1:3] == "31" and card[3:6] == "840"
    assert card[6:14] == "19800101"
    # The standard's worked example, and the check equation over every built number.
    assert gb11643("11010519491231002") == "11010519491231002X"
    for id_type, number in VALID:
        if id_type in GB11643_TYPES:
            assert iso7064_mod11_2_holds(number), number
            assert not iso7064_mod11_2_holds(wrong_check(number)), number


# ------------------------------------------------------------------ normalisation


HK_PERMIT = hmt_permit("19850615")
PR_CARD = foreigner("19800101")


@pytest.mark.parametrize(
    ("id_type", "typed", "stored"),
    [
        (IdType.resident_id, "11010519491231002x", "11010519491231002X"),
        (IdType.resident_id, " 110105 19491231 002X ", "11010519491231002X"),
        (IdType.resident_id, "110105\u300019491231002x", "11010519491231002X"),  # 全角空格
        (
            IdType.hmt_residence_permit,
            f"{HK_PERMIT[:6]} {HK_PERMIT[6:14]} {HK_PERMIT[14:]}",
            HK_PERMIT,
        ),
        (IdType.foreign_permanent_residence, f"\t{PR_CARD}\n", PR_CARD),
        (IdType.hk_macao_permit, "h12345678", "H12345678"),
        (IdType.hk_macao_permit, "M 8765 4321", "M87654321"),
        (IdType.taiwan_permit, " 0123 4567 ", "01234567"),
        (IdType.passport, "e12345678", "E12345678"),
        (IdType.passport, "ea 123 4567", "EA1234567"),
    ],
)
def test_lower_case_and_spaces_are_normalised(id_type: IdType, typed: str, stored: str) -> None:
    assert id_document_problem(id_type, typed, today=TODAY) is None
    assert checked_id_document(id_type, typed, today=TODAY) == stored


def test_a_lower_case_x_check_character_counts_for_permits_too() -> None:
    # Find a Hong Kong resident's permit whose check character is X.
    body = next(
        f"810000198506{day:02d}{seq:03d}"
        for day in range(1, 29)
        for seq in range(1000)
        if resident_id_check_char(f"810000198506{day:02d}{seq:03d}") == "X"
    )
    permit = body + "X"
    assert checked_id_document(IdType.hmt_residence_permit, permit.lower(), today=TODAY) == permit


# ------------------------------------------------------------------ check characters


@pytest.mark.parametrize(
    ("id_type", "number"),
    [
        (IdType.resident_id, resident("19900307")),
        (IdType.resident_id, "11010519491231002X"),
        (IdType.hmt_residence_permit, hmt_permit("19850615", "810000")),
        (IdType.hmt_residence_permit, hmt_permit("19850615", "820000")),
        (IdType.hmt_residence_permit, hmt_permit("19850615", "830000")),
        (IdType.foreign_permanent_residence, foreigner("19800101")),
        (IdType.foreign_permanent_residence, foreigner("19751120", "11", "826")),
    ],
)
def test_a_wrong_check_character_is_refused(id_type: IdType, number: str) -> None:
    assert id_document_problem(id_type, wrong_check(number), today=TODAY) == "check_char"
    # Every other check character is wrong too, X included.
    for char in "0123456789X":
        if char != number[-1]:
            assert id_document_problem(id_type, number[:-1] + char) == "check_char", char


@pytest.mark.parametrize(
    ("id_type", "number", "positions"),
    [
        # The birth date has its own check and the region code is a format matter: change
        # the sequence.
        (IdType.hmt_residence_permit, HK_PERMIT, (14, 15, 16)),
        # The accepting province, the nationality and the sequence.
        (IdType.foreign_permanent_residence, PR_CARD, (1, 2, 3, 4, 5, 14, 15, 16)),
    ],
)
def test_a_single_changed_digit_is_caught(
    id_type: IdType, number: str, positions: tuple[int, ...]
) -> None:
    for position in positions:
        digit = number[position]
        changed = number[:position] + str((int(digit) + 1) % 10) + number[position + 1 :]
        assert id_document_problem(id_type, changed) == "check_char", (position, changed)


# ------------------------------------------------------------------ lengths and prefixes


@pytest.mark.parametrize(
    ("id_type", "number"),
    [
        # Too short or too long.
        (IdType.resident_id, resident("19900307")[:17]),
        (IdType.resident_id, resident("19900307") + "1"),
        (IdType.resident_id, "110105900307123"),  # the 15-digit first-generation card
        (IdType.hmt_residence_permit, hmt_permit("19850615")[:17]),
        (IdType.hmt_residence_permit, hmt_permit("19850615") + "0"),
        (IdType.foreign_permanent_residence, foreigner("19800101")[:17]),
        (IdType.foreign_permanent_residence, foreigner("19800101") + "0"),
        (IdType.hk_macao_permit, "H1234567"),
        (IdType.hk_macao_permit, "H123456789"),
        (IdType.hk_macao_permit, "H123456789012"),
        (IdType.taiwan_permit, "1234567"),
        (IdType.taiwan_permit, "123456789"),
        (IdType.taiwan_permit, "1234567890"),  # the pre-2015 booklet's number
        (IdType.passport, "E123"),
        (IdType.passport, "E" + "1" * 17),
        # Letters or signs where they do not belong.
        (IdType.resident_id, "11010519900307123Y"),
        (IdType.resident_id, "1101051990030712X3"),
        (IdType.hmt_residence_permit, "8100001985061512A"),
        (IdType.hk_macao_permit, "H1234567A"),
        (IdType.taiwan_permit, "T1234567"),
        (IdType.passport, "E1234-5678"),
        (IdType.passport, "E12345678<"),  # machine-readable zone filler
        (IdType.passport, "ABCDEFGH"),  # no digit at all
        (IdType.passport, "护照12345"),
        # Empty or blank.
        (IdType.resident_id, ""),
        (IdType.hmt_residence_permit, "   "),
        (IdType.passport, ""),
        (IdType.taiwan_permit, " "),
    ],
)
def test_wrong_lengths_and_characters_are_format_problems(id_type: IdType, number: str) -> None:
    assert id_document_problem(id_type, number, today=TODAY) == "format"


@pytest.mark.parametrize(
    ("id_type", "number", "why"),
    [
        (IdType.resident_id, hmt_permit("19850615", "810000"), "a Hong Kong resident's permit"),
        (IdType.resident_id, hmt_permit("19850615", "820000"), "a Macao resident's permit"),
        (IdType.resident_id, hmt_permit("19850615", "830000"), "a Taiwan resident's permit"),
        (IdType.resident_id, foreigner("19800101"), "a foreigner's card (starts with 9)"),
        (IdType.hmt_residence_permit, resident("19850615"), "a mainland resident ID"),
        (IdType.hmt_residence_permit, resident("19850615", "440101"), "a Guangzhou resident ID"),
        (
            IdType.hmt_residence_permit,
            hmt_permit("19850615", "810100"),
            "not the whole region code",
        ),
        (IdType.hmt_residence_permit, hmt_permit("19850615", "840000"), "no such region"),
        (IdType.hmt_residence_permit, foreigner("19800101"), "a foreigner's card"),
        (IdType.foreign_permanent_residence, resident("19800101"), "a mainland resident ID"),
        (
            IdType.foreign_permanent_residence,
            hmt_permit("19800101"),
            "a Hong Kong resident's permit",
        ),
        (IdType.hk_macao_permit, "K12345678", "an HKSAR passport, not the permit"),
        (IdType.hk_macao_permit, "12345678", "the letter is missing"),
        (IdType.hk_macao_permit, "E12345678", "a PRC passport"),
    ],
)
def test_a_number_of_another_document_is_refused(id_type: IdType, number: str, why: str) -> None:
    problem = id_document_problem(id_type, number, today=TODAY)
    assert problem == "format", why
    with pytest.raises(DomainError) as refused:
        checked_id_document(id_type, number, today=TODAY)
    assert refused.value.code == "id_number_format"


def test_a_permit_number_is_right_under_its_own_type_only() -> None:
    permit = hmt_permit("19850615", "810000")
    card = foreigner("19800101")
    answers = {t: id_document_problem(t, permit, today=TODAY) for t in GB11643_TYPES}
    assert answers == {
        IdType.resident_id: "format",
        IdType.hmt_residence_permit: None,
        IdType.foreign_permanent_residence: "format",
    }
    answers = {t: id_document_problem(t, card, today=TODAY) for t in GB11643_TYPES}
    assert answers == {
        IdType.resident_id: "format",
        IdType.hmt_residence_permit: "format",
        IdType.foreign_permanent_residence: None,
    }


# ------------------------------------------------------------------ birth dates


@pytest.mark.parametrize("id_type", GB11643_TYPES)
@pytest.mark.parametrize(
    "born",
    [
        "19900230",  # 30 February
        "19870229",  # 29 February of a common year
        "19901301",  # month 13
        "19900001",  # month 0
        "19900100",  # day 0
        "19900431",  # 31 April
        "18991231",  # before 1900
    ],
)
def test_impossible_birth_dates_are_refused(id_type: IdType, born: str) -> None:
    number = {
        IdType.resident_id: resident,
        IdType.hmt_residence_permit: hmt_permit,
        IdType.foreign_permanent_residence: foreigner,
    }[id_type](born)
    # The check character is right: the birth date is what is wrong.
    assert id_document_problem(id_type, number, today=TODAY) == "birth_date"
    with pytest.raises(DomainError) as refused:
        checked_id_document(id_type, number, today=TODAY)
    assert refused.value.code == "id_number_birth_date"
    assert "出生日期" in refused.value.detail


@pytest.mark.parametrize("id_type", GB11643_TYPES)
def test_a_birth_date_after_today_is_refused(id_type: IdType) -> None:
    build = {
        IdType.resident_id: resident,
        IdType.hmt_residence_permit: hmt_permit,
        IdType.foreign_permanent_residence: foreigner,
    }[id_type]
    tomorrow, today = build("20261124"), build("20261123")
    assert id_document_problem(id_type, tomorrow, today=TODAY) == "birth_date"
    assert id_document_problem(id_type, today, today=TODAY) is None  # born today: a real date
    # A leap day is a birth date in a leap year.
    assert id_document_problem(id_type, build("20000229"), today=TODAY) is None


@pytest.mark.parametrize(
    ("id_type", "number", "born"),
    [
        (IdType.resident_id, resident("19900307"), date(1990, 3, 7)),
        (IdType.resident_id, "11010519491231002x", date(1949, 12, 31)),
        (IdType.hmt_residence_permit, hmt_permit("19850615", "830000"), date(1985, 6, 15)),
        (IdType.foreign_permanent_residence, foreigner("19800101", "44", "392"), date(1980, 1, 1)),
        (IdType.foreign_permanent_residence, " " + foreigner("20000229"), date(2000, 2, 29)),
    ],
)
def test_the_birth_date_is_read_from_dated_documents(
    id_type: IdType, number: str, born: date
) -> None:
    assert birth_date_of(id_type, number) == born


@pytest.mark.parametrize("id_type", UNDATED_TYPES)
def test_documents_without_a_birth_date_carry_none(id_type: IdType) -> None:
    # Even characters that look like a date inside are not read as one.
    number = {
        IdType.hk_macao_permit: "H20100101",
        IdType.taiwan_permit: "20100101",
        IdType.passport: "E20100101",
    }[id_type]
    assert id_document_problem(id_type, number, today=TODAY) is None
    assert birth_date_of(id_type, number) is None
    assert birth_date_of(id_type, resident("20100101")) is None


# ------------------------------------------------------------------ minors


@pytest.mark.parametrize("id_type", GB11643_TYPES)
def test_a_holder_is_a_minor_until_the_18th_birthday(id_type: IdType) -> None:
    build = {
        IdType.resident_id: resident,
        IdType.hmt_residence_permit: hmt_permit,
        IdType.foreign_permanent_residence: foreigner,
    }[id_type]
    number = build("20081123")  # 18 on 23 November 2026
    assert is_minor(id_type, number, today=date(2026, 11, 22))  # the day before
    assert not is_minor(id_type, number, today=date(2026, 11, 23))  # the birthday itself
    assert not is_minor(id_type, number, today=date(2026, 11, 24))
    assert is_minor(id_type, number, today=date(2008, 11, 23))  # born that day
    assert is_minor(id_type, number, today=date(2026, 1, 1))  # the year is not enough
    assert not is_minor(id_type, build("19491231"), today=TODAY)


@pytest.mark.parametrize("id_type", GB11643_TYPES)
def test_the_18th_birthday_turns_across_a_month_and_a_year(id_type: IdType) -> None:
    build = {
        IdType.resident_id: resident,
        IdType.hmt_residence_permit: hmt_permit,
        IdType.foreign_permanent_residence: foreigner,
    }[id_type]
    new_year = build("20090101")
    assert is_minor(id_type, new_year, today=date(2026, 12, 31))
    assert not is_minor(id_type, new_year, today=date(2027, 1, 1))
    month_end = build("20081130")
    assert is_minor(id_type, month_end, today=date(2026, 11, 29))
    assert not is_minor(id_type, month_end, today=date(2026, 11, 30))
    assert not is_minor(id_type, month_end, today=date(2026, 12, 1))
    # Born on a leap day: still a minor before the end of February, an adult in March.
    leap = build("20080229")
    assert is_minor(id_type, leap, today=date(2026, 2, 27))
    assert not is_minor(id_type, leap, today=date(2026, 3, 1))
    assert not is_minor(id_type, leap, today=date(2028, 2, 29))


@pytest.mark.parametrize(
    ("id_type", "number"),
    [
        (IdType.hk_macao_permit, "H12345678"),
        (IdType.taiwan_permit, "01234567"),
        (IdType.passport, "E12345678"),
        (IdType.passport, "E20200101"),
    ],
)
def test_documents_with_no_birth_date_never_count_as_minor(id_type: IdType, number: str) -> None:
    for today in (date(1990, 1, 1), date(2020, 1, 2), TODAY, date(2100, 1, 1)):
        assert is_minor(id_type, number, today=today) is False


def test_minority_follows_the_document_type_not_the_characters() -> None:
    # A child's date inside the characters counts only under a document that has one.
    child = foreigner("20150601")
    assert is_minor(IdType.foreign_permanent_residence, child, today=TODAY)
    for id_type in UNDATED_TYPES:
        assert not is_minor(id_type, child, today=TODAY)
        assert not is_minor(id_type, child[:8], today=TODAY)


# ------------------------------------------------------------------ messages


BAD_FORMAT = {
    IdType.resident_id: "1101051990",
    IdType.hmt_residence_permit: resident("19850615"),
    IdType.foreign_permanent_residence: PR_CARD[:17],
    IdType.hk_macao_permit: "X12345678",
    IdType.taiwan_permit: "T1234567",
    IdType.passport: "E1",
}


@pytest.mark.parametrize("id_type", list(IdType))
def test_a_format_refusal_names_the_document_in_chinese(id_type: IdType) -> None:
    number = BAD_FORMAT[id_type]
    with pytest.raises(DomainError) as refused:
        checked_id_document(id_type, number, today=TODAY)
    error = refused.value
    assert error.code == "id_number_format"
    assert error.detail.startswith(ID_TYPE_LABELS[id_type] + "号码")
    assert error.detail.endswith("。")
    assert error.extra == {"id_type": id_type.value}
    assert number not in error.detail  # the refusal does not repeat personal data
    # It names only this document: no other document's label is in it.
    others = [ID_TYPE_LABELS[t] for t in IdType if t is not id_type]
    assert not any(
        label in error.detail for label in others if label not in ID_TYPE_LABELS[id_type]
    )


@pytest.mark.parametrize(
    ("id_type", "says"),
    [
        (IdType.resident_id, "18 位"),
        (IdType.hmt_residence_permit, "810000、820000 或 830000"),
        (IdType.foreign_permanent_residence, "以 9 开头"),
        (IdType.hk_macao_permit, "H 或 M"),
        (IdType.taiwan_permit, "8 位数字"),
        (IdType.passport, "字母和数字"),
    ],
)
def test_a_format_refusal_says_what_the_number_looks_like(id_type: IdType, says: str) -> None:
    with pytest.raises(DomainError) as refused:
        checked_id_document(id_type, BAD_FORMAT[id_type], today=TODAY)
    assert says in refused.value.detail


@pytest.mark.parametrize(
    ("id_type", "number"),
    [
        (IdType.resident_id, resident("19900307")),
        (IdType.hmt_residence_permit, hmt_permit("19850615", "820000")),
        (IdType.foreign_permanent_residence, foreigner("19800101")),
    ],
)
def test_check_and_birth_date_refusals_name_the_document(id_type: IdType, number: str) -> None:
    label = ID_TYPE_LABELS[id_type]
    with pytest.raises(DomainError) as refused:
        checked_id_document(id_type, wrong_check(number), today=TODAY)
    assert refused.value.code == "id_number_check_char"
    assert refused.value.detail == f"{label}号码校验位不正确，请核对。"
    assert refused.value.extra == {"id_type": id_type.value}

    future = gb11643(number[:6] + "20301231" + number[14:17])
    with pytest.raises(DomainError) as refused:
        checked_id_document(id_type, future, today=TODAY)
    assert refused.value.code == "id_number_birth_date"
    assert refused.value.detail == f"{label}号码中的出生日期不存在。"


def test_the_refusal_says_whose_document_it_is() -> None:
    with pytest.raises(DomainError) as refused:
        checked_id_document(IdType.passport, "E1", today=TODAY, whose="买受人 约翰 的")
    assert refused.value.detail == "买受人 约翰 的护照号码应为 5 到 17 位字母和数字。"
    with pytest.raises(DomainError) as refused:
        checked_id_document(
            IdType.hmt_residence_permit,
            wrong_check(hmt_permit("19850615")),
            today=TODAY,
            whose="出卖人 陈大文 的",
        )
    assert refused.value.detail == "出卖人 陈大文 的港澳台居民居住证号码校验位不正确，请核对。"


# ------------------------------------------------------------------ keyed lookup


KEYS = ServiceKeys.from_master(b"unit-test-master-secret-" + b"k" * 16)


def test_a_resident_id_keeps_the_index_it_always_had() -> None:
    number = resident("19900307")
    legacy = id_number_index(KEYS.pii_index, number)  # what rows written before hold
    assert KEYS.id_index(number) == legacy
    assert KEYS.id_index(number, IdType.resident_id) == legacy
    assert KEYS.id_index(number.lower(), IdType.resident_id) == legacy
    assert KEYS.protect_id_number(number, field=FIELD_ID_NUMBER).index == legacy


@pytest.mark.parametrize(
    "characters",
    ["H12345678", "01234567", "E12345678", resident("19900307"), hmt_permit("19850615")],
)
def test_the_same_characters_under_two_document_types_never_collide(characters: str) -> None:
    indexes = {t: KEYS.id_index(characters, t) for t in IdType}
    assert len(set(indexes.values())) == len(IdType)
    # Each one is stable and ignores case and spaces, like the resident ID's.
    for id_type, index in indexes.items():
        assert KEYS.id_index(characters, id_type) == index
        spaced = " ".join([characters[:4], characters[4:].lower()])
        assert KEYS.id_index(spaced, id_type) == index


def test_another_key_gives_other_indexes() -> None:
    other = ServiceKeys.from_master(b"another-master-secret-" + b"q" * 16)
    for id_type in IdType:
        assert other.id_index("E12345678", id_type) != KEYS.id_index("E12345678", id_type)


@pytest.mark.parametrize(
    ("id_type", "number"),
    [
        (IdType.resident_id, "11010519491231002X"),
        (IdType.hmt_residence_permit, HK_PERMIT),
        (IdType.foreign_permanent_residence, PR_CARD),
        (IdType.hk_macao_permit, "M87654321"),
        (IdType.taiwan_permit, "01234567"),
        (IdType.passport, "E12345678"),
    ],
)
def test_a_protected_document_number_is_indexed_under_its_type(
    id_type: IdType, number: str
) -> None:
    protected = KEYS.protect_id_number(number, field=FIELD_ID_NUMBER, id_type=id_type)
    assert protected.index == KEYS.id_index(number, id_type)
    assert KEYS.pii.decrypt(protected.encrypted, field=FIELD_ID_NUMBER) == number
    assert number not in protected.encrypted
    assert protected.masked.startswith(number[:4]) or len(number) <= 8
    assert protected.masked.endswith(number[-2:])
    assert "*" in protected.masked and protected.masked != number
    if id_type is not IdType.resident_id:
        assert protected.index != KEYS.id_index(number, IdType.resident_id)
