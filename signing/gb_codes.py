"""Check characters of two national identifiers, the one implementation in the code base.

- Resident identity numbers (居民身份证号码), GB 11643-1999: 17 digits and an ISO 7064
  MOD 11-2 check character.
- Unified social credit codes (统一社会信用代码), GB 32100-2015: 18 characters over a
  31-letter alphabet, the last one a MOD 31 check character.

Written by hand: a few lines of arithmetic fixed by the standards, which no maintained
package covers. A leaf module (it imports nothing of ours): certificates check credit
codes here, and ``api.core.validators`` builds its checks on it without the CA.
"""

from __future__ import annotations

import re

_ID_WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]
_ID_CHECK = "10X98765432"
_CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_CODE = re.compile(rf"[{_CREDIT_CODE_ALPHABET}]{{18}}")


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of a resident ID number."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def credit_code_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a credit code."""
    total = sum(
        _CREDIT_CODE_ALPHABET.index(char) * pow(3, position, 31)
        for position, char in enumerate(first17)
    )
    return _CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def credit_code_is_valid(code: str) -> bool:
    """Unified social credit code format and check character (upper case, as printed)."""
    if not _CREDIT_CODE.fullmatch(code):
        return False
    return credit_code_check_char(code[:17]) == code[17]
