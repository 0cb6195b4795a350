"""Canonical documents: the exact bytes a contract signature covers.

A contract's terms are frozen when the order is issued. The frozen document is a JSON
object serialized with the JSON Canonicalization Scheme (RFC 8785), so that any party can
rebuild the same bytes from the same data; its SHA-256 in lowercase hex is the *document
hash* that every signing context, certificate request and evidence bundle refers to. The
template id and version live inside the signed content, so a signature cannot be replayed
onto another template's text.

Two formats:

- ``wangqian.contract/v1``: ``{"format", "template_id", "template_version", "terms"}``;
  the terms only (documents frozen before the contract text existed).
- ``wangqian.contract/v2``: the same plus ``"template_sha256"`` (the hash of the template
  version's source) and ``"text"``: the rendered contract as the signer reads it,
  ``{"title", "chapters": [{"heading", "clauses": [...]}]}``. What is read, printed into
  the PDF and signed are then one and the same bytes.

The same canonicalization (:func:`canonical_json`) serializes signing contexts, audit
events and evidence bundles.

Contract terms may not contain floats: money is integer fen (分) and areas are integers of
0.0001 m² or decimal strings, so binary rounding can never change what was signed.

Times in signed content are UTC to the second, written ``YYYY-MM-DDTHH:MM:SSZ``
(:func:`format_utc`), because CMS signing-time and X.509 validity carry no sub-second part.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

DOCUMENT_FORMAT = "wangqian.contract/v1"
DOCUMENT_FORMAT_V2 = "wangqian.contract/v2"
_FIELDS_V1 = frozenset({"format", "template_id", "template_version", "terms"})
_FIELDS_V2 = _FIELDS_V1 | {"template_sha256", "text"}
_HEX64 = re.compile(r"[0-9a-f]{64}")

_UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class CanonicalDocumentError(ValueError):
    """The content cannot be frozen as (or is not) a canonical contract document."""


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of any JSON-able value (dicts with str keys, lists, str, int, bool, None).

    Raises ``rfc8785.CanonicalizationError`` (a ``ValueError``) for values JSON cannot carry
    exactly, e.g. integers beyond 2**53 or NaN.
    """
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_seconds(now: datetime) -> datetime:
    """``now`` converted to UTC and truncated to whole seconds; naive datetimes are refused."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC), got a naive one")
    return now.astimezone(UTC).replace(microsecond=0)


def format_utc(moment: datetime) -> str:
    return utc_seconds(moment).strftime(_UTC_FORMAT)


def parse_utc(text: str) -> datetime:
    """Inverse of :func:`format_utc`; accepts only that exact form."""
    return datetime.strptime(text, _UTC_FORMAT).replace(tzinfo=UTC)


def _refuse_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise CanonicalDocumentError(
            f"{path} is a float ({value!r}); contract terms may not hold floats: "
            "money is integer fen, areas are integers of 0.0001 m² or decimal strings"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_floats(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_floats(item, f"{path}[{index}]")


@dataclass(frozen=True, slots=True)
class CanonicalDocument:
    """A frozen contract document: its canonical bytes and their SHA-256 (the document hash).

    Only bytes are kept, so the record stays immutable; :meth:`content` parses them again.
    """

    template_id: str
    template_version: str
    canonical_bytes: bytes
    document_hash: str

    @property
    def canonical_text(self) -> str:
        return self.canonical_bytes.decode("utf-8")

    def content(self) -> dict[str, Any]:
        return json.loads(self.canonical_bytes)

    def terms(self) -> dict[str, Any]:
        return self.content()["terms"]

    def text(self) -> dict[str, Any] | None:
        """The rendered contract text (v2 documents), or None for a terms-only document."""
        return self.content().get("text")


def _check_text(text: Any) -> None:
    if not isinstance(text, Mapping) or set(text) != {"title", "chapters"}:
        raise CanonicalDocumentError("text must be exactly {title, chapters}")
    chapters = text["chapters"]
    if not isinstance(text["title"], str) or not text["title"]:
        raise CanonicalDocumentError("text.title must be a non-empty string")
    if not isinstance(chapters, list) or not chapters:
        raise CanonicalDocumentError("text.chapters must be a non-empty list")
    for position, chapter in enumerate(chapters):
        if (
            not isinstance(chapter, Mapping)
            or set(chapter) != {"heading", "clauses"}
            or not isinstance(chapter["heading"], str)
            or not isinstance(chapter["clauses"], list)
            or not all(isinstance(c, str) and c for c in chapter["clauses"])
        ):
            raise CanonicalDocumentError(
                f"text.chapters[{position}] must be {{heading, clauses: [non-empty strings]}}"
            )


def canonical_document(
    template_id: str,
    template_version: str,
    terms: Mapping[str, Any],
    *,
    text: Mapping[str, Any] | None = None,
    template_sha256: str | None = None,
) -> CanonicalDocument:
    """Freeze contract ``terms`` into a canonical document: v2 with the rendered ``text``
    and the template's hash, v1 (terms only) without them."""
    if (text is None) != (template_sha256 is None):
        raise CanonicalDocumentError("text and template_sha256 come together")
    if not template_id or not isinstance(template_id, str):
        raise CanonicalDocumentError("template_id must be a non-empty string")
    if not template_version or not isinstance(template_version, str):
        raise CanonicalDocumentError("template_version must be a non-empty string")
    if not isinstance(terms, Mapping):
        raise CanonicalDocumentError("terms must be a JSON object")
    _refuse_floats(terms, "terms")
    content: dict[str, Any] = {
        "format": DOCUMENT_FORMAT,
        "template_id": template_id,
        "template_version": template_version,
        "terms": dict(terms),
    }
    if text is not None:
        if not isinstance(template_sha256, str) or not _HEX64.fullmatch(template_sha256):
            raise CanonicalDocumentError("template_sha256 must be 64 lowercase hex characters")
        _check_text(text)
        content.update(
            format=DOCUMENT_FORMAT_V2, template_sha256=template_sha256, text=dict(text)
        )
    try:
        data = canonical_json(content)
    except rfc8785.CanonicalizationError as error:
        raise CanonicalDocumentError(f"terms are not canonical JSON material: {error}") from error
    return CanonicalDocument(template_id, template_version, data, sha256_hex(data))


def load_canonical_document(data: bytes | str) -> CanonicalDocument:
    """Parse stored canonical bytes back into a document, refusing anything not canonical.

    Canonical means: valid UTF-8 JSON of the expected shape whose RFC 8785 re-serialization
    is byte-identical, so the hash of the stored bytes is the hash of the content.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        content = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CanonicalDocumentError(f"document is not valid JSON: {error}") from error
    if not isinstance(content, dict):
        raise CanonicalDocumentError("document is not a JSON object")
    expected = {DOCUMENT_FORMAT: _FIELDS_V1, DOCUMENT_FORMAT_V2: _FIELDS_V2}.get(
        content.get("format")
    )
    if expected is None and set(content) in (_FIELDS_V1, _FIELDS_V2):
        raise CanonicalDocumentError(f"unknown document format {content.get('format')!r}")
    if set(content) != expected:
        expected = expected or _FIELDS_V1
        raise CanonicalDocumentError(
            f"document fields must be exactly {sorted(expected)}; got {sorted(content)}"
        )
    try:
        rebuilt = canonical_document(
            content["template_id"],
            content["template_version"],
            content["terms"],
            text=content.get("text"),
            template_sha256=content.get("template_sha256"),
        )
    except (CanonicalDocumentError, TypeError) as error:
        raise CanonicalDocumentError(str(error)) from error
    if rebuilt.canonical_bytes != raw:
        raise CanonicalDocumentError("document bytes are not in RFC 8785 canonical form")
    return rebuilt
