"""The result of every verification in this package: a list of :class:`Check`.

Each verifier (CMS signatures, time-stamps, evidence bundles, PDFs, offline QR tokens)
reports one :class:`Check` per step, with a reason in plain words, never a bare boolean,
so that a failed verification says which part broke.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    """One verification step: what was checked, whether it held, and why in plain words."""

    name: str
    ok: bool
    reason: str

    def prefixed(self, prefix: str, label: str = "") -> Check:
        reason = f"{label}: {self.reason}" if label else self.reason
        return Check(f"{prefix}.{self.name}", self.ok, reason)
