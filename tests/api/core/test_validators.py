from datetime import date

import pytest

from api.core.validators import (
    is_valid_mobile,
    is_valid_resident_id,
    is_valid_uscc,
    resident_id_problem,
)
from signing.gb_codes import credit_code_check_char, resident_id_check_char

# Codes printed on real business licences (public information).
KNOWN_GOOD_USCC = [
    "91350100M000100Y43",
    "91110000600037341L",
    "91440300708461136T",
    "9144030071526726XG",
]


@pytest.mark.parametrize("code", KNOWN_GOOD_USCC)
def test_known_good_uscc(code: str) -> None:
    assert is_valid_uscc(code)
    assert is_valid_uscc(code.lower())  # people type them in lower case
    assert credit_code_check_char(code[:17]) == code[17]


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y44",  # wrong check character
        "91440300708461136X",  # wrong check character
        "91350100M000100Y4",  # too short
        "91350100M000100Y433",  # too long
        "9135010OM000100Y43",  # O is not in the GB 32100 alphabet
        "91350100M000I00Y43",  # nor is I
        "",
    ],
)
def test_known_bad_uscc(code: str) -> None:
    assert not is_valid_uscc(code)


def test_uscc_single_character_changes_are_caught() -> None:
    code = KNOWN_GOOD_USCC[0]
    for position in range(8, 17):  # the organisation-code part, digits and letters
        original = code[position]
        replacement = "1" if original != "1" else "2"
        mutated = code[:position] + replacement + code[position + 1 :]
        assert not is_valid_uscc(mutated), mutated


def test_resident_id_standard_example() -> None:
    # The worked example of GB 11643-1999.
    assert resident_id_check_char("11010519491231002") == "X"
    assert is_valid_resident_id("11010519491231002X")
    assert is_valid_resident_id("11010519491231002x")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("110105194912310021", "check_char"),
        ("11010519491331002X", "birth_date"),  # month 13
        ("11010519490230002X", "birth_date"),  # 30 February
        ("1101051949123100", "format"),
        ("11010519491231002Y", "format"),
        ("11010518991231002X", "birth_date"),  # before 1900
    ],
)
def test_resident_id_problems(value: str, problem: str) -> None:
    assert resident_id_problem(value) == problem


def test_resident_id_born_in_the_future_is_refused() -> None:
    body = "11010520301231002"
    value = body + resident_id_check_char(body)
    assert resident_id_problem(value, today=date(2026, 11, 23)) == "birth_date"
    assert resident_id_problem(value) is None  # without a today, only the calendar is checked


@pytest.mark.parametrize(
    ("phone", "ok"),
    [
        ("13812345678", True),
        ("19912345678", True),
        ("12812345678", False),
        ("1381234567", False),
        ("+8613812345678", False),
    ],
)
def test_mobile(phone: str, ok: bool) -> None:
    assert is_valid_mobile(phone) is ok
