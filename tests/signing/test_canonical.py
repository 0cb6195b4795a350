"""Canonical documents: stable bytes, hash over those bytes, template inside, no floats."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from signing.canonical import (
    CanonicalDocumentError,
    canonical_document,
    canonical_json,
    format_utc,
    load_canonical_document,
    parse_utc,
    utc_seconds,
)


def test_same_terms_in_any_key_order_give_the_same_bytes_and_hash() -> None:
    first = canonical_document("t", "1", {"price_fen": 100, "unit": {"room": "301", "floor": 3}})
    second = canonical_document("t", "1", {"unit": {"floor": 3, "room": "301"}, "price_fen": 100})
    assert first.canonical_bytes == second.canonical_bytes
    assert first.document_hash == second.document_hash
    assert first.document_hash == hashlib.sha256(first.canonical_bytes).hexdigest()


def test_template_id_and_version_are_inside_the_signed_content() -> None:
    one = canonical_document("presale", "1", {"price_fen": 1})
    two = canonical_document("presale", "2", {"price_fen": 1})
    assert one.content()["template_id"] == "presale"
    assert one.content()["template_version"] == "1"
    assert one.document_hash != two.document_hash


def test_canonical_bytes_follow_rfc8785() -> None:
    doc = canonical_document("t", "1", {"b": "买受人", "a": [1, True, None]})
    assert doc.canonical_text == (
        '{"format":"wangqian.contract/v1","template_id":"t","template_version":"1",'
        '"terms":{"a":[1,true,null],"b":"买受人"}}'
    )
    assert canonical_json({"z": 1, "a": {"y": "x"}}) == b'{"a":{"y":"x"},"z":1}'


def test_floats_are_refused_with_their_path() -> None:
    with pytest.raises(CanonicalDocumentError, match=r"terms\.unit\.area is a float"):
        canonical_document("t", "1", {"unit": {"area": 89.5}})


def test_integers_beyond_json_precision_are_refused() -> None:
    with pytest.raises(CanonicalDocumentError):
        canonical_document("t", "1", {"price_fen": 2**60})


def test_stored_document_loads_back_and_non_canonical_text_is_refused() -> None:
    doc = canonical_document("t", "1", {"price_fen": 5, "room": "301"})
    assert load_canonical_document(doc.canonical_bytes) == doc
    pretty = json.dumps(doc.content(), indent=2, ensure_ascii=False)
    with pytest.raises(CanonicalDocumentError, match="canonical form"):
        load_canonical_document(pretty)
    with pytest.raises(CanonicalDocumentError, match="exactly"):
        load_canonical_document(canonical_json({"terms": {}}))


def test_times_are_utc_seconds_and_naive_times_are_refused() -> None:
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2026, 11, 23, 10, 0, 5, 999_999, tzinfo=shanghai)
    assert utc_seconds(moment) == datetime(2026, 11, 23, 2, 0, 5, tzinfo=UTC)
    assert format_utc(moment) == "2026-11-23T02:00:05Z"
    assert parse_utc("2026-11-23T02:00:05Z") == utc_seconds(moment)
    with pytest.raises(ValueError, match="naive"):
        utc_seconds(datetime(2026, 1, 1))
