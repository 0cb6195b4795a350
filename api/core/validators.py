"""Checks of what people type: identity documents (the resident ID of GB 11643, with a
real birth date and its check character, and the documents of Hong Kong, Macao and Taiwan
residents and of foreigners), unified social credit codes (GB 32100) and mainland mobile
numbers.

The check-character arithmetic itself lives in ``signing.gb_codes``.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from datetime import date

from api.core.errors import DomainError
from signing.gb_codes import credit_code_is_valid, resident_id_check_char
from signing.pii import normalize_id_number

_ID_PATTERN = re.compile(r"^\d{17}[\dX]$", re.ASCII)
_MOBILE_PATTERN = re.compile(r"^1[3-9]\d{9}$", re.ASCII)
ADULT_AGE = 18


class IdType(enum.StrEnum):
    """Identity documents a party may sign with (seed 004: 港澳台人士、外国人士)."""

    resident_id = "resident_id"  # 居民身份证
    hmt_residence_permit = "hmt_residence_permit"  # 港澳台居民居住证 (GB 11643, 81/82/83…)
    # 外国人永久居留身份证: 18 digits from 9… (2023), or 3 letters + 12 digits (2017)
    foreign_permanent_residence = "foreign_permanent_residence"
    # 港澳居民来往内地通行证: H/M + 8 digits (the old 11-character form adds 2 renewal digits)
    hk_macao_permit = "hk_macao_permit"
    taiwan_permit = "taiwan_permit"  # 台湾居民来往大陆通行证 (8 digits)
    passport = "passport"  # 护照


ID_TYPE_LABELS = {
    IdType.resident_id: "居民身份证",
    IdType.hmt_residence_permit: "港澳台居民居住证",
    IdType.foreign_permanent_residence: "外国人永久居留身份证",
    IdType.hk_macao_permit: "港澳居民来往内地通行证",
    IdType.taiwan_permit: "台湾居民来往大陆通行证",
    IdType.passport: "护照",
}
# Numbers in the layout of GB 11643 (a birth date inside, the same check character).
_GB11643_PREFIXES = {
    IdType.resident_id: None,
    IdType.hmt_residence_permit: ("810000", "820000", "830000"),
    IdType.foreign_permanent_residence: ("9",),
}
_NON_RESIDENT_PREFIXES = ("810000", "820000", "830000", "9")
_OTHER_PATTERNS = {
    IdType.hk_macao_permit: re.compile(r"^[HM]\d{8}(\d{2})?$", re.ASCII),
    IdType.taiwan_permit: re.compile(r"^\d{8}$", re.ASCII),
    IdType.passport: re.compile(r"^(?=.*\d)[A-Z0-9]{5,17}$", re.ASCII),
}
# The 2017 foreigner's card, valid side by side with the 2023 one until it expires.
_FOREIGN_2017 = re.compile(r"^[A-Z]{3}\d{12}$", re.ASCII)


def canonical_id_number(id_type: IdType, value: str) -> str:
    """One spelling per document, so one person has one keyed lookup: normalised, and an
    old 11-character Hong Kong/Macao permit number without its 2 renewal digits (the
    8 digits after H/M are the holder's for life)."""
    number = normalize_id_number(value)
    if id_type is IdType.hk_macao_permit and len(number) == 11:
        return number[:9]
    return number


def id_document_problem(id_type: IdType, value: str, *, today: date | None = None) -> str | None:
    """Why ``value`` is not a valid number of a document of ``id_type``, or None when it
    is: ``format``, ``birth_date`` or ``check_char``."""
    value = normalize_id_number(value)
    if id_type is IdType.foreign_permanent_residence and _FOREIGN_2017.match(value):
        return None
    if id_type in _GB11643_PREFIXES:
        prefixes = _GB11643_PREFIXES[id_type]
        # A resident ID never starts like a permit (81/82/83…) or a foreigner's card (9…).
        other = value.startswith(_NON_RESIDENT_PREFIXES)
        if (prefixes is None and other) or (
            prefixes is not None and not value.startswith(prefixes)
        ):
            return "format"
        return resident_id_problem(value, today=today)
    return None if _OTHER_PATTERNS[id_type].match(value) else "format"


_FORMATS = {
    IdType.resident_id: "应为 18 位（最后一位可为 X）",
    IdType.hmt_residence_permit: "应为 18 位，以 810000、820000 或 830000 开头",
    IdType.foreign_permanent_residence: (
        "应为 18 位并以 9 开头（2023 版），或 3 位字母加 12 位数字（2017 版）"
    ),
    IdType.hk_macao_permit: "应为 H 或 M 加 8 位数字（旧版证件可另带 2 位换证次数）",
    IdType.taiwan_permit: "应为 8 位数字",
    IdType.passport: "应为 5 到 17 位字母和数字",
}


def checked_id_document(id_type: IdType, value: str, *, today: date, whose: str = "") -> str:
    """The document number as stored (no spaces, upper case), or a refusal that says, in
    Chinese, what is wrong with it (``whose`` names the person, e.g. "买受人 张三 的")."""
    number = canonical_id_number(id_type, value)
    problem = id_document_problem(id_type, value, today=today)
    if problem is None:
        return number
    label = ID_TYPE_LABELS[id_type]
    detail = {
        "format": f"{whose}{label}号码{_FORMATS[id_type]}。",
        "birth_date": f"{whose}{label}号码中的出生日期不存在。",
        "check_char": f"{whose}{label}号码校验位不正确，请核对。",
    }[problem]
    raise DomainError(f"id_number_{problem}", detail, id_type=id_type.value)


def birth_date_of(id_type: IdType, value: str) -> date | None:
    """The birth date a valid document number carries, when its layout has one."""
    value = normalize_id_number(value)
    if id_type not in _GB11643_PREFIXES or _FOREIGN_2017.match(value):
        return None
    return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


def is_minor(id_type: IdType, value: str, *, today: date) -> bool:
    """Under 18 on ``today``, when the document says when its holder was born."""
    born = birth_date_of(id_type, value)
    if born is None:
        return False
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return years < ADULT_AGE


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


# What a signing certificate's subject can carry of a person's name (signing.certificates.Signer
# allows 1-64 characters; people's names on documents stay well inside 30).
MAX_PERSON_NAME_LENGTH = 30


def normalized_person_name(raw: str, *, min_length: int = 1) -> str | None:
    """A person's name as certificates and documents print it (runs of whitespace made one
    space), or None when no certificate should carry it: blank, too long, with digits, or
    with a character that prints nothing or reorders the text (control and format
    characters such as NUL, zero-width spaces and right-to-left overrides)."""
    name = " ".join(raw.split())
    if not min_length <= len(name) <= MAX_PERSON_NAME_LENGTH:
        return None
    if any(c.isdigit() or unicodedata.category(c).startswith("C") for c in name):
        return None
    return name
