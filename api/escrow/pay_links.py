"""The bank payment page's link, signed: the bank's page checks that the reference, the
amount and the account are the ones we put in the link, so a changed URL is refused.

``sig`` is the hex HMAC-SHA256, with the secret shared with the bank
(``WANGQIAN_BANK_PAY_LINK_SECRET``), of ``reference|amount_fen|account`` (our parameters
joined by "|", in that order). The link carries ``reference``, ``amount_fen``,
``account`` and ``sig``.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode


def pay_link_signature(secret: str, reference: str, amount_fen: int, account: str) -> str:
    message = f"{reference}|{amount_fen}|{account}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_pay_url(
    pay_base: str, secret: str, reference: str, amount_fen: int, account: str
) -> str:
    query = {"reference": reference, "amount_fen": amount_fen, "account": account}
    if secret:
        query["sig"] = pay_link_signature(secret, reference, amount_fen, account)
    return f"{pay_base}?{urlencode(query)}"
