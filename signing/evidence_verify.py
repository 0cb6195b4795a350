"""Verifying an evidence bundle offline, with nothing but the platform's root certificate.

:func:`verify_bundle` checks the document and its hash, every signature and its signing
context, that each party the contract names signed exactly once, the audit event chain,
the time-stamp tokens (format v2) and the platform's signature over the whole; it never
raises on a bad bundle: it returns a :class:`VerificationReport` whose failed checks say
in plain words which part broke. :func:`parse_bundle` reads a bundle file strictly.
The bundle format is described in :mod:`signing.evidence`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from signing.canonical import (
    canonical_json,
    format_utc,
    load_canonical_document,
    parse_utc,
    sha256_hex,
)
from signing.certificates import load_root_certificate
from signing.checks import Check
from signing.event_chain import verify_event_chain
from signing.evidence import (
    BUNDLE_FIELDS,
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_V2,
    contract_parties,
    party_checks,
    unsigned_part,
)
from signing.signatures import (
    PlatformSignature,
    SignatureRecord,
    verify_platform_signature,
    verify_signature,
)
from signing.tsa import verify_token


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
        content = canonical_json(unsigned_part(bundle))
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
    expected = {BUNDLE_FORMAT: BUNDLE_FIELDS, BUNDLE_FORMAT_V2: BUNDLE_FIELDS | {"timestamps"}}
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
    return party_checks(parties, records)


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
