"""Check characters and formats of Chinese identifiers.

- Resident identity numbers (居民身份证号码), GB 11643-1999: 17 digits and an ISO 7064
  MOD 11-2 check character, with a real birth date inside.
- Unified social credit codes (统一社会信用代码), GB 32100-2015: 18 characters over a
  31-letter alphabet, the last one a MOD 31 check character.
- Mainland mobile numbers.

Written by hand because no maintained PyPI package covers them and they are a few lines
of arithmetic fixed by the standards; the GB 32100 arithmetic lives in ``signing.ca``
(certificates check credit codes too, and ``signing`` may not import ``api``).
"""

from __future__ import annotations

import re
from datetime import date

from signing.ca import credit_code_check_char, credit_code_is_valid

_ID_WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]
_ID_CHECK = "10X98765432"
_ID_PATTERN = re.compile(r"^\d{17}[\dX]$")


_MOBILE_PATTERN = re.compile(r"^1[3-9]\d{9}$")


def normalize_id_number(value: str) -> str:
    return value.strip().upper()


def resident_id_check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def resident_id_problem(value: str, *, today: date | None = None) -> str | None:
    """Why ``value`` is not a valid resident ID number, or None when it is.

    The answer is a stable code: ``format``, ``birth_date`` or ``check_char``.
    """
    value = normalize_id_number(value)
    if not _ID_PATTERN.match(value):
        return "format"
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "birth_date"
    if born.year < 1900 or (today is not None and born > today):
        return "birth_date"
    if resident_id_check_char(value[:17]) != value[17]:
        return "check_char"
    return None


def is_valid_resident_id(value: str, *, today: date | None = None) -> bool:
    return resident_id_problem(value, today=today) is None


def uscc_check_char(first17: str) -> str:
    return credit_code_check_char(first17)


def is_valid_uscc(value: str) -> bool:
    return credit_code_is_valid(value.strip().upper())


def is_valid_mobile(value: str) -> bool:
    return bool(_MOBILE_PATTERN.match(value))
