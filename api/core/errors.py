"""The one way a rule says no: ``DomainError`` with a stable ``code`` and a Chinese ``detail``.

Services, clients and middleware raise it and know nothing of HTTP. Which HTTP status a
code answers with is decided in one table, ``api.core.problems.STATUS_BY_CODE``, beside
the problem+json handler.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the client can act on. ``code`` is stable; ``detail`` is for people.

    ``extra`` fields travel in the answer's body (``retry_after`` also becomes the
    ``Retry-After`` header): what the client needs to act, such as tries left.
    """

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.extra = extra

    @classmethod
    def not_found(cls, what: str) -> DomainError:
        return cls("not_found", f"未找到该{what}。", resource=what)
