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
cannot change what was hashed. The order's audit events form a hash chain: each event's
``hash`` is the SHA-256 of the canonical JSON of its index, ``previous_hash`` and
``payload``, and ``previous_hash`` is the preceding event's hash or, for the first event,
the order's genesis value (so a chain cannot be moved to another order). The platform
signs the canonical JSON of the whole bundle minus ``platform_signature``.

:func:`verify_bundle` never raises on a bad bundle: it returns a :class:`VerificationReport`
whose failed checks say in plain words which part broke.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from signing.ca import PlatformCA
from signing.canonical import (
    CanonicalDocument,
    canonical_json,
    format_utc,
    load_canonical_document,
    parse_utc,
    sha256_hex,
    utc_seconds,
)
from signing.certificates import certificate_credit_code, load_root_certificate
from signing.cms import Check, SignerRole
from signing.signatures import (
    PlatformSignature,
    SignatureRecord,
    platform_sign,
    verify_platform_signature,
    verify_signature,
)
from signing.tsa import verify_token

BUNDLE_FORMAT = "wangqian.evidence-bundle/v1"
BUNDLE_FORMAT_V2 = "wangqian.evidence-bundle/v2"
EVENT_CHAIN_FORMAT = "wangqian.audit-events/v1"

_BUNDLE_FIELDS = frozenset(
    {"format", "order_id", "created_at", "document", "signatures", "events", "platform_signature"}
)
_EVENT_FIELDS = frozenset({"index", "previous_hash", "payload", "hash"})


class EvidenceError(ValueError):
    """A bundle cannot be built from inconsistent parts."""


def genesis_hash(order_id: str) -> str:
    """The ``previous_hash`` of an order's first audit event."""
    return sha256_hex(canonical_json({"chain": EVENT_CHAIN_FORMAT, "order_id": order_id}))


def event_hash(index: int, previous_hash: str, payload: Mapping[str, Any]) -> str:
    return sha256_hex(
        canonical_json({"index": index, "previous_hash": previous_hash, "payload": dict(payload)})
    )


def next_event(
    order_id: str, previous: Mapping[str, Any] | None, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The chained event that follows ``previous`` (None for the first event of an order)."""
    index = 0 if previous is None else int(previous["index"]) + 1
    previous_hash = genesis_hash(order_id) if previous is None else str(previous["hash"])
    # Round-trip through canonical JSON so the stored payload is exactly what was hashed.
    frozen_payload = _json_copy(payload)
    return {
        "index": index,
        "previous_hash": previous_hash,
        "payload": frozen_payload,
        "hash": event_hash(index, previous_hash, frozen_payload),
    }


def chain_events(order_id: str, payloads: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Hash-chain an order's audit event payloads (dicts of JSON values), oldest first."""
    events: list[dict[str, Any]] = []
    for payload in payloads:
        events.append(next_event(order_id, events[-1] if events else None, payload))
    return events


def _json_copy(value: Any) -> Any:
    return json.loads(canonical_json(value))


def verify_event_chain(order_id: str, events: Any) -> list[Check]:
    """Checks for an event list: one failed check per broken event, or one passing check."""
    if not isinstance(events, list):
        return [Check("events", False, "the audit events are not a list")]
    failures: list[Check] = []
    expected_previous = genesis_hash(order_id)
    for position, event in enumerate(events):
        name = f"events[{position}]"
        label = f"audit event #{position}"
        if not isinstance(event, Mapping) or set(event) != _EVENT_FIELDS:
            failures.append(
                Check(
                    name,
                    False,
                    f"{label} does not have exactly index, previous_hash, payload, hash",
                )
            )
            expected_previous = event.get("hash") if isinstance(event, Mapping) else None
            continue
        if event["index"] != position or isinstance(event["index"], bool):
            failures.append(
                Check(f"{name}.index", False, f"{label} carries index {event['index']!r}")
            )
        if event["previous_hash"] != expected_previous:
            which = "the genesis value" if position == 0 else f"event #{position - 1}'s hash"
            failures.append(
                Check(
                    f"{name}.previous_hash",
                    False,
                    f"{label}: previous_hash is not {which} (an event was changed, removed "
                    "or inserted before it)",
                )
            )
        try:
            recomputed = event_hash(event["index"], event["previous_hash"], event["payload"])
        except (TypeError, ValueError) as error:
            failures.append(Check(f"{name}.hash", False, f"{label} cannot be hashed: {error}"))
        else:
            if recomputed != event["hash"]:
                failures.append(
                    Check(
                        f"{name}.hash",
                        False,
                        f"{label}: hash does not match its content (its payload, index, "
                        "previous hash or the hash itself was changed)",
                    )
                )
        expected_previous = event["hash"]
    if failures:
        return failures
    return [Check("events", True, f"{len(events)} audit events, hash chain intact")]


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The outcome of verifying an evidence bundle: every check, and whether all held."""

    checks: tuple[Check, ...]
    order_id: str | None = None
    document_hash: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "order_id": self.order_id,
            "document_hash": self.document_hash,
            "checks": [
                {"name": check.name, "ok": check.ok, "reason": check.reason}
                for check in self.checks
            ],
        }

    def to_text(self) -> str:
        lines = [
            "Evidence bundle 证据包",
            f"  order 订单: {self.order_id or '?'}",
            f"  document hash 文件哈希: {self.document_hash or '?'}",
            "",
        ]
        for check in self.checks:
            mark = " OK " if check.ok else "FAIL"
            lines.append(f"[{mark}] {check.name}: {check.reason}")
        failed = len(self.failures())
        lines.append("")
        if self.ok:
            lines.append(f"Result 结论: VALID 有效 ({len(self.checks)} checks passed)")
        else:
            lines.append(
                f"Result 结论: INVALID 无效 ({failed} of {len(self.checks)} checks failed)"
            )
        return "\n".join(lines)


def _unsigned_part(bundle: Mapping[str, Any]) -> dict[str, Any]:
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


def _party_checks(parties: list[Party], records: list[SignatureRecord | None]) -> list[Check]:
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
    failed = [c for c in _party_checks(contract_parties(document), list(signatures)) if not c.ok]
    if failed:
        raise EvidenceError(failed[0].reason)
    event_list = [_json_copy(dict(event)) for event in events]
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


def _document_checks(document: Any) -> tuple[list[Check], str | None]:
    if not isinstance(document, Mapping) or set(document) != {"canonical_json", "sha256"}:
        return [Check("document", False, "the document section is malformed")], None
    declared = document["sha256"]
    text = document["canonical_json"]
    checks: list[Check] = []
    try:
        raw = text.encode("utf-8")
    except (AttributeError, UnicodeEncodeError):
        return [Check("document.canonical", False, "the document text is not valid UTF-8")], None
    try:
        loaded = load_canonical_document(raw)
        checks.append(
            Check(
                "document.canonical",
                True,
                f"canonical contract document, template {loaded.template_id} "
                f"version {loaded.template_version}",
            )
        )
    except ValueError as error:
        checks.append(Check("document.canonical", False, f"the contract document: {error}"))
    actual = sha256_hex(raw)
    if actual == declared:
        checks.append(Check("document.hash", True, f"SHA-256 of the document is {actual}"))
    else:
        checks.append(
            Check(
                "document.hash",
                False,
                f"the document hash does not match: the bundle declares {declared!r} but the "
                f"document text hashes to {actual} (the contract text was changed)",
            )
        )
    return checks, declared if isinstance(declared, str) else None


def _signature_checks(
    position: int,
    entry: Any,
    order_id: Any,
    document_hash: str | None,
    created_at: datetime | None,
    root: x509.Certificate,
) -> list[Check]:
    name = f"signatures[{position}]"
    role = entry.get("role") if isinstance(entry, Mapping) else None
    label = (
        f"signature #{position + 1} ({role})"
        if isinstance(role, str)
        else (f"signature #{position + 1}")
    )
    try:
        record = SignatureRecord.from_dict(entry)
    except Exception as error:
        return [Check(name, False, f"{label}: unreadable entry: {error}")]
    context = record.context
    checks = [
        Check(
            f"{name}.document_hash",
            context.document_hash == document_hash,
            f"{label}: signed the bundle's document"
            if context.document_hash == document_hash
            else f"{label}: its signing context names document hash {context.document_hash}, "
            f"not the bundle's {document_hash}",
        ),
        Check(
            f"{name}.order_id",
            context.order_id == order_id,
            f"{label}: signed for this order"
            if context.order_id == order_id
            else f"{label}: its signing context names order {context.order_id!r}",
        ),
    ]
    if created_at is not None and context.signing_time > created_at:
        checks.append(
            Check(f"{name}.signing_time", False, f"{label}: signed after the bundle was made")
        )
    try:
        result = verify_signature(record, root)
    except Exception as error:  # a report names what broke; it never raises
        checks.append(Check(f"{name}.verification", False, f"{label}: cannot be verified: {error}"))
        return checks
    checks.extend(check.prefixed(name, label) for check in result.checks)
    return checks


def _platform_checks(
    bundle: Mapping[str, Any], created_at: datetime | None, root: x509.Certificate
) -> list[Check]:
    name = "platform_signature"
    label = "platform signature"
    try:
        signature = PlatformSignature.from_dict(bundle["platform_signature"])
        content = canonical_json(_unsigned_part(bundle))
    except Exception as error:
        return [Check(name, False, f"{label}: unreadable: {error}")]
    result = verify_platform_signature(signature, content, root)
    checks = [check.prefixed(name, label) for check in result.checks]
    if result.signing_time is not None and created_at is not None:
        same = result.signing_time == created_at
        checks.append(
            Check(
                f"{name}.signing_time",
                same,
                f"{label}: made at {format_utc(created_at)}"
                if same
                else f"{label}: CMS signing-time {format_utc(result.signing_time)} is not the "
                f"bundle's created_at {format_utc(created_at)}",
            )
        )
    return checks


def verify_bundle(
    bundle: Any, root_pem_or_cert: bytes | str | x509.Certificate
) -> VerificationReport:
    """Verify an evidence bundle offline against the platform root certificate.

    Never raises on a bad bundle: anything unexpected becomes a failed check.
    """
    try:
        return _verify_bundle(bundle, root_pem_or_cert)
    except Exception as error:
        return VerificationReport(
            (Check("bundle", False, f"the bundle could not be verified: {error!r}"),)
        )


def _verify_bundle(
    bundle: Any, root_pem_or_cert: bytes | str | x509.Certificate
) -> VerificationReport:
    try:
        root = load_root_certificate(root_pem_or_cert)
    except Exception as error:
        return VerificationReport((Check("root", False, f"unusable root certificate: {error}"),))
    if not isinstance(bundle, Mapping):
        return VerificationReport((Check("bundle", False, "the bundle is not a JSON object"),))
    expected = {BUNDLE_FORMAT: _BUNDLE_FIELDS, BUNDLE_FORMAT_V2: _BUNDLE_FIELDS | {"timestamps"}}
    if set(bundle) != expected.get(bundle.get("format"), set()):
        return VerificationReport(
            (
                Check(
                    "bundle",
                    False,
                    f"not a {BUNDLE_FORMAT} bundle (fields {sorted(map(str, bundle))})",
                ),
            )
        )
    order_id = bundle["order_id"]
    checks: list[Check] = []
    created_at: datetime | None
    try:
        created_at = parse_utc(bundle["created_at"])
    except (TypeError, ValueError):
        created_at = None
        checks.append(Check("created_at", False, "the bundle's created_at is not a UTC time"))
    if not isinstance(order_id, str) or not order_id:
        checks.append(Check("order_id", False, "the bundle names no order"))

    document_checks, document_hash = _document_checks(bundle["document"])
    checks.extend(document_checks)

    signatures = bundle["signatures"]
    if not isinstance(signatures, list) or not signatures:
        checks.append(Check("signatures", False, "the bundle holds no signatures"))
    else:
        for position, entry in enumerate(signatures):
            checks.extend(
                _signature_checks(position, entry, order_id, document_hash, created_at, root)
            )
        checks.extend(_bundle_party_checks(bundle["document"], signatures))

    checks.extend(verify_event_chain(str(order_id), bundle["events"]))
    if "timestamps" in bundle:
        checks.extend(_timestamp_checks(bundle["timestamps"], signatures, created_at, root))
    checks.extend(_platform_checks(bundle, created_at, root))
    return VerificationReport(
        tuple(checks),
        order_id if isinstance(order_id, str) else None,
        document_hash,
    )


def _timestamp_checks(
    entries: Any, signatures: Any, created_at: datetime | None, root: x509.Certificate
) -> list[Check]:
    """Each token stamps its signature's CMS bytes, under the root, no earlier than the
    signing act said it happened and no later than the bundle was made."""
    if not isinstance(entries, list) or not entries:
        return [Check("timestamps", False, "the time-stamp list is empty or malformed")]
    checks: list[Check] = []
    for position, entry in enumerate(entries):
        name = f"timestamps[{position}]"
        try:
            index = entry["signature"]
            record = SignatureRecord.from_dict(signatures[index])
            token = base64.b64decode(entry["token"], validate=True)
            if set(entry) != {"signature", "token"} or isinstance(index, bool) or index < 0:
                raise ValueError("an entry has exactly signature (an index) and token")
        except Exception as error:  # a report names what broke; it never raises
            checks.append(Check(name, False, f"time-stamp #{position + 1} is unreadable: {error}"))
            continue
        label = f"time-stamp of signature #{index + 1} ({record.role.value})"
        result = verify_token(token, record.signature_der, root)
        checks.extend(check.prefixed(name, label) for check in result.checks)
        if result.time is None:
            continue
        in_order = record.context.signing_time <= result.time and (
            created_at is None or result.time <= created_at
        )
        checks.append(
            Check(
                f"{name}.time",
                in_order,
                f"{label}: {format_utc(result.time)}, after the signing act"
                if in_order
                else f"{label}: {format_utc(result.time)} is before the act or after the bundle",
            )
        )
    return checks


def _bundle_party_checks(document: Any, signatures: list[Any]) -> list[Check]:
    try:
        parties = contract_parties(load_canonical_document(document["canonical_json"]))
    except Exception as error:
        return [Check("parties", False, f"the parties to the contract cannot be read: {error}")]
    records: list[SignatureRecord | None] = []
    for entry in signatures:
        try:
            records.append(SignatureRecord.from_dict(entry))
        except Exception:  # already reported by the signature's own checks
            records.append(None)
    return _party_checks(parties, records)


class BundleFormatError(ValueError):
    """A bundle file that is not strict JSON."""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        raise BundleFormatError(f"duplicate keys {duplicated}")
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise BundleFormatError(f"{name} is not JSON")


def parse_bundle(raw: bytes | str) -> Any:
    """Read a bundle file strictly: duplicate keys, NaN or Infinity, and absurd nesting are
    refused, because a reader that keeps another copy of a key than we do would be shown
    a different contract than the one that verified."""
    try:
        return json.loads(
            raw, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except RecursionError:
        raise BundleFormatError("nested too deeply") from None
    except ValueError as error:
        if isinstance(error, BundleFormatError):
            raise
        raise BundleFormatError(str(error)) from None


def bundle_signature_der(bundle: Mapping[str, Any], position: int) -> bytes:
    """The DER of signature ``position`` of a bundle, e.g. to hand to ``openssl cms``."""
    return base64.b64decode(bundle["signatures"][position]["signature"])
