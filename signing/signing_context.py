"""Signing contexts: what one signing act was about, and who may sign.

A *signing context* records what one signing act was about: the document hash, the order,
the party's role, the signer's keyed ID hash, the signing time, the one-time-code challenge
that authorized it, and the client's IP address and user agent. Its RFC 8785 bytes
(:meth:`SigningContext.canonical_bytes`) are the detached content of the CMS signature
(:mod:`signing.cms`) that the signer makes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from signing.canonical import canonical_json, format_utc, parse_utc, utc_seconds

CONTEXT_FORMAT = "wangqian.signing-context/v1"

_HEX64 = re.compile(r"[0-9a-f]{64}")
# A keyed hash is long hex; an 18-character ID number can never pass for one.
_KEYED_HASH = re.compile(r"[0-9a-f]{32,128}")


class SignerRole(StrEnum):
    """Who signs: 买受人 buyer, 出卖人 seller, 合同章 company seal, or the platform itself."""

    BUYER = "buyer"
    SELLER = "seller"
    SEAL = "seal"
    PLATFORM = "platform"


PARTY_ROLES = frozenset({SignerRole.BUYER, SignerRole.SELLER, SignerRole.SEAL})

_CONTEXT_FIELDS = frozenset(
    {
        "format",
        "document_hash",
        "order_id",
        "role",
        "signer_id_hash",
        "signing_time",
        "challenge_id",
        "client_ip",
        "user_agent",
    }
)


@dataclass(frozen=True, slots=True)
class SigningContext:
    """What one signing act was about; its canonical JSON is the CMS content."""

    document_hash: str
    order_id: str
    role: SignerRole
    signer_id_hash: str
    signing_time: datetime
    challenge_id: str
    client_ip: str
    user_agent: str

    def __post_init__(self) -> None:
        if not isinstance(self.document_hash, str) or not _HEX64.fullmatch(self.document_hash):
            raise ValueError("document_hash must be 64 lowercase hex characters (SHA-256)")
        if not isinstance(self.order_id, str) or not self.order_id:
            raise ValueError("order_id must be a non-empty string")
        role = SignerRole(self.role)
        if role not in PARTY_ROLES:
            raise ValueError(f"role must be one of buyer, seller, seal; got {role.value!r}")
        object.__setattr__(self, "role", role)
        if not isinstance(self.signer_id_hash, str) or not _KEYED_HASH.fullmatch(
            self.signer_id_hash
        ):
            raise ValueError(
                "signer_id_hash must be a keyed hash in lowercase hex (32-128 characters), "
                "never the ID number itself"
            )
        object.__setattr__(self, "signing_time", utc_seconds(self.signing_time))
        if not isinstance(self.challenge_id, str) or not self.challenge_id:
            raise ValueError("challenge_id must be a non-empty string")
        if not isinstance(self.client_ip, str):
            raise ValueError("client_ip must be a string")
        ipaddress.ip_address(self.client_ip)  # raises ValueError naming the bad address
        if not isinstance(self.user_agent, str):
            raise ValueError("user_agent must be a string")
        # Fail here, not at signing or verification time, on text JSON cannot carry
        # (lone surrogates from a broken client).
        self.canonical_bytes()

    def to_dict(self) -> dict[str, str]:
        return {
            "format": CONTEXT_FORMAT,
            "document_hash": self.document_hash,
            "order_id": self.order_id,
            "role": self.role.value,
            "signer_id_hash": self.signer_id_hash,
            "signing_time": format_utc(self.signing_time),
            "challenge_id": self.challenge_id,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SigningContext:
        """Strict inverse of :meth:`to_dict`: unknown or missing fields are refused."""
        if not isinstance(data, Mapping) or set(data) != _CONTEXT_FIELDS:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"signing context fields must be {sorted(_CONTEXT_FIELDS)}; got {got}")
        if data["format"] != CONTEXT_FORMAT:
            raise ValueError(f"unknown signing context format {data['format']!r}")
        if not isinstance(data["signing_time"], str):
            raise ValueError("signing_time must be a string")
        context = cls(
            document_hash=data["document_hash"],
            order_id=data["order_id"],
            role=SignerRole(data["role"]),
            signer_id_hash=data["signer_id_hash"],
            signing_time=parse_utc(data["signing_time"]),
            challenge_id=data["challenge_id"],
            client_ip=data["client_ip"],
            user_agent=data["user_agent"],
        )
        if context.to_dict() != dict(data):
            raise ValueError("signing context is not in its canonical form")
        return context
