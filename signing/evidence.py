"""Evidence bundles (证据包): one self-contained JSON document per contract.

A bundle holds everything needed to check a contract offline with only the platform's
root certificate::

    {
      "format": "wangqian.evidence-bundle/v1",
      "order_id": "...",
      "created_at": "2025-03-01T08:00:00Z",
      "document": {"canonical_json": "<RFC 8785 text>", "sha256": "<document hash>"},
      "signatures": [{"role", "context", "signature": "<base64 DER>",
                      "certificate_chain": ["<PEM signer>", "<PEM issuing CA>"]}, ...],
      "events": [{"index", "previous_hash", "payload", "hash"}, ...],
      "timestamps": [{"signature": 0, "token": "<base64 DER>"}, ...],     (v2 only)
      "platform_signature": {"signature": "<base64 DER>", "certificate_chain": [...]}
    }

Format v2 adds ``timestamps``: RFC 3161 time-stamp tokens, each over the SHA-256 of one
signature's CMS DER (``signature`` is its index), from the platform's TSA or the
configured one. They prove each signing act happened no later than the token's time,
by a clock other than the signer's; verification checks each token against the root.
A bundle without tokens stays v1.

The canonical document is kept as text, byte for byte, so that re-serializing the bundle
cannot change what was hashed. The order's audit events form a hash chain
(:mod:`signing.event_chain`). The platform signs the canonical JSON of the whole bundle
minus ``platform_signature``.

This module builds bundles (:func:`build_bundle`) and says who must have signed one
(:func:`contract_parties`); :mod:`signing.evidence_verify` verifies them offline.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from signing.ca import PlatformCA
from signing.canonical import CanonicalDocument, canonical_json, format_utc, utc_seconds
from signing.certificates import certificate_credit_code
from signing.checks import Check
from signing.event_chain import json_copy, verify_event_chain
from signing.signatures import SignatureRecord, platform_sign
from signing.signing_context import SignerRole

BUNDLE_FORMAT = "wangqian.evidence-bundle/v1"
BUNDLE_FORMAT_V2 = "wangqian.evidence-bundle/v2"

BUNDLE_FIELDS = frozenset(
    {"format", "order_id", "created_at", "document", "signatures", "events", "platform_signature"}
)


class EvidenceError(ValueError):
    """A bundle cannot be built from inconsistent parts."""


def unsigned_part(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """What the platform signature covers: the bundle without it."""
    return {key: value for key, value in bundle.items() if key != "platform_signature"}


@dataclass(frozen=True)
class Party:
    """A party the contract names as having to sign.

    Every contract's terms carry ``parties``: persons as ``{"role": "buyer"|"seller",
    "name", "id_hash"}`` (the keyed ID hash of :func:`signing.certificates.signer_id_hash`) and a
    developer's seal as ``{"role": "seal", "name", "credit_code"}``. A bundle holds exactly
    one signature per party, so no contract is "valid" that a named party never signed.
    """

    role: SignerRole
    name: str
    key: str  # id_hash for persons, credit_code for a seal


def contract_parties(document: CanonicalDocument) -> list[Party]:
    """The parties a document names; ``EvidenceError`` when they are missing or malformed."""
    try:
        listed = document.terms().get("parties")
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise EvidenceError(f"the document has no terms: {error}") from None
    if not isinstance(listed, list) or not listed:
        raise EvidenceError("the contract terms name no parties")
    parties: list[Party] = []
    for position, entry in enumerate(listed):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise EvidenceError(f"party #{position + 1} is malformed")
        try:
            role = SignerRole(entry.get("role"))
        except ValueError:
            raise EvidenceError(f"party #{position + 1} has an unknown role") from None
        field = "credit_code" if role is SignerRole.SEAL else "id_hash"
        key = entry.get(field)
        if role is SignerRole.PLATFORM or not isinstance(key, str) or not key:
            raise EvidenceError(f"party #{position + 1} ({role.value}) has no {field}")
        parties.append(Party(role, entry["name"], key))
    roles = {party.role for party in parties}
    if SignerRole.BUYER not in roles or not roles & {SignerRole.SELLER, SignerRole.SEAL}:
        raise EvidenceError("a contract needs a buyer and a seller or a developer's seal")
    if len({(p.role, p.key) for p in parties}) != len(parties):
        raise EvidenceError("the contract names the same party twice")
    return parties


def _signature_party_key(record: SignatureRecord) -> tuple[SignerRole, str | None]:
    if record.role is SignerRole.SEAL:
        return record.role, certificate_credit_code(record.signer_certificate)
    return record.role, record.context.signer_id_hash


def party_checks(parties: list[Party], records: list[SignatureRecord | None]) -> list[Check]:
    """Exactly one signature per named party, and no signature from anyone else."""
    checks: list[Check] = []
    wanted = {(party.role, party.key): party for party in parties}
    seen: set[tuple[SignerRole, str | None]] = set()
    for position, record in enumerate(records):
        if record is None:
            continue
        key = _signature_party_key(record)
        label = f"signature #{position + 1} ({record.role.value})"
        if key not in wanted:
            checks.append(
                Check(
                    f"signatures[{position}].party",
                    False,
                    f"{label}: made by someone the contract does not name as a party",
                )
            )
        elif key in seen:
            checks.append(
                Check(
                    f"signatures[{position}].party",
                    False,
                    f"{label}: a second signature by {wanted[key].name}",
                )
            )
        else:
            checks.append(
                Check(
                    f"signatures[{position}].party",
                    True,
                    f"{label}: by {wanted[key].name}, a party to the contract",
                )
            )
        seen.add(key)
    for (role, key), party in wanted.items():
        if (role, key) not in seen:
            checks.append(
                Check("parties", False, f"{party.name} ({role.value}) never signed the contract")
            )
    if all(check.ok for check in checks):
        checks.append(Check("parties", True, f"all {len(parties)} parties signed"))
    return checks


def build_bundle(
    ca: PlatformCA,
    document: CanonicalDocument,
    order_id: str,
    signatures: Sequence[SignatureRecord],
    events: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    timestamps: Sequence[bytes | None] | None = None,
) -> dict[str, Any]:
    """Assemble and platform-sign a contract's evidence bundle.

    ``events`` are already chained (:func:`chain_events` / :func:`next_event`). Parts that
    do not belong together are refused rather than bundled into something that fails.
    """
    moment = utc_seconds(now)
    if not signatures:
        raise EvidenceError("an evidence bundle needs at least one signature")
    for position, record in enumerate(signatures):
        if record.context.document_hash != document.document_hash:
            raise EvidenceError(f"signature #{position + 1} is over another document")
        if record.context.order_id != order_id:
            raise EvidenceError(f"signature #{position + 1} belongs to another order")
        if record.context.signing_time > moment:
            raise EvidenceError(f"signature #{position + 1} is later than the bundle")
    failed = [c for c in party_checks(contract_parties(document), list(signatures)) if not c.ok]
    if failed:
        raise EvidenceError(failed[0].reason)
    event_list = [json_copy(dict(event)) for event in events]
    broken = [check for check in verify_event_chain(order_id, event_list) if not check.ok]
    if broken:
        raise EvidenceError(f"audit event chain is broken: {broken[0].reason}")
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "order_id": order_id,
        "created_at": format_utc(moment),
        "document": {
            "canonical_json": document.canonical_text,
            "sha256": document.document_hash,
        },
        "signatures": [record.to_dict() for record in signatures],
        "events": event_list,
    }
    tokens = [
        {"signature": position, "token": base64.b64encode(token).decode("ascii")}
        for position, token in enumerate(timestamps or [])
        if token is not None
    ]
    if tokens:
        bundle["format"] = BUNDLE_FORMAT_V2
        bundle["timestamps"] = tokens
    signature = platform_sign(ca, canonical_json(bundle), moment)
    bundle["platform_signature"] = signature.to_dict()
    return bundle
