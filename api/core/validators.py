"""Checks of what people type: resident ID numbers (GB 11643: format, a real birth date,
the check character), unified social credit codes (GB 32100) and mainland mobile numbers.

The check-character arithmetic itself lives in ``signing.gb_codes``.
"""

from __future__ import annotations

import re
from datetime import date

from api.core.errors import DomainError
from signing.gb_codes import credit_code_is_valid, resident_id_check_char
from signing.pii import normalize_id_number

_ID_PATTERN = re.compile(r"^\d{17}[\dX]$")
_MOBILE_PATTERN = re.compile(r"^1[3-9]\d{9}$")


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


def is_valid_uscc(value: str) -> bool:
    return credit_code_is_valid(value.strip().upper())


def is_valid_mobile(value: str) -> bool:
    return bool(_MOBILE_PATTERN.match(value))


def normalize_phone(raw: str) -> str:
    """A mainland mobile number as we store it (11 digits, no +86), or a refusal."""
    phone = "".join(raw.split())
    if phone.startswith("+86"):
        phone = phone[3:]
    if not is_valid_mobile(phone):
        raise DomainError("phone_invalid", "手机号码格式不正确。")
    return phone
