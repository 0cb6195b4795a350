"""Evidence bundles: they verify offline, and any change to a signed part is named."""

from __future__ import annotations

import base64
import copy
import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signing.ca import PlatformCA
from signing.canonical import canonical_document, canonical_json
from signing.event_chain import chain_events, genesis_hash, next_event, verify_event_chain
from signing.evidence import EvidenceError, build_bundle
from signing.evidence_verify import verify_bundle
from signing.signatures import platform_sign, sign_once
from tests.signing.helpers import (
    NOW,
    ORDER_ID,
    buyer,
    context_for,
    document,
    event_payloads,
    new_ca,
    sign_parties,
)


def _failed_names(report: Any) -> set[str]:
    return {check.name for check in report.failures()}


def _resign(ca: PlatformCA, bundle: dict[str, Any]) -> dict[str, Any]:
    """Platform-sign a hand-edited bundle, so only the edit itself can fail."""
    unsigned = {k: v for k, v in bundle.items() if k != "platform_signature"}
    signature = platform_sign(ca, canonical_json(unsigned), NOW + timedelta(minutes=3))
    return {**unsigned, "platform_signature": signature.to_dict()}


def test_bundle_verifies_offline_with_only_the_root(ca: PlatformCA, bundle: dict[str, Any]) -> None:
    report = verify_bundle(json.loads(json.dumps(bundle)), ca.root_pem().decode())
    assert report.ok, report.to_text()
    assert report.order_id == ORDER_ID
    assert report.document_hash == document().document_hash
    assert len(bundle["signatures"]) == 3
    assert len(bundle["events"]) == 20
    assert "VALID 有效" in report.to_text()
    assert report.to_dict()["ok"] is True


def test_document_hash_is_sha256_of_the_canonical_document(bundle: dict[str, Any]) -> None:
    doc = bundle["document"]
    assert doc["sha256"] == document().document_hash
    assert doc["canonical_json"] == document().canonical_text
    for entry in bundle["signatures"]:
        assert entry["context"]["document_hash"] == doc["sha256"]


# --- tampering -----------------------------------------------------------------------


def _flip_text(text: str, position: int, mask: int) -> str:
    """Flip bits of one UTF-8 byte of ``text`` (lone bytes survive as surrogates)."""
    raw = bytearray(text.encode("utf-8"))
    raw[position % len(raw)] ^= mask
    return raw.decode("utf-8", errors="surrogateescape")


def _flip_b64(text: str, position: int, mask: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[position % len(raw)] ^= mask
    return base64.b64encode(bytes(raw)).decode("ascii")


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in _leaves(value[key], (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, (*path, i))]
    return [path]


def _tamper_leaf(container: Any, path: tuple[Any, ...], position: int, mask: int) -> None:
    parent = container
    for key in path[:-1]:
        parent = parent[key]
    value = parent[path[-1]]
    if isinstance(value, bool) or value is None:
        parent[path[-1]] = "tampered"
    elif isinstance(value, int):
        parent[path[-1]] = value ^ mask
    else:
        parent[path[-1]] = _flip_text(value, position, mask)


TARGETS = [
    "document",
    "signature",
    "context",
    "event_payload",
    "event_hash",
    "event_previous_hash",
    "platform_signature",
]


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    target=st.sampled_from(TARGETS),
    item=st.integers(min_value=0, max_value=10_000),
    position=st.integers(min_value=0, max_value=100_000),
    mask=st.integers(min_value=1, max_value=255),
)
def test_flipping_any_byte_of_a_signed_part_is_detected_and_named(
    ca: PlatformCA, bundle: dict[str, Any], target: str, item: int, position: int, mask: int
) -> None:
    tampered = copy.deepcopy(bundle)
    signatures = tampered["signatures"]
    events = tampered["events"]
    if target == "document":
        document_part = tampered["document"]
        document_part["canonical_json"] = _flip_text(
            document_part["canonical_json"], position, mask
        )
        expected = "document."
    elif target == "signature":
        index = item % len(signatures)
        signatures[index]["signature"] = _flip_b64(signatures[index]["signature"], position, mask)
        expected = f"signatures[{index}]."
    elif target == "context":
        index = item % len(signatures)
        context = signatures[index]["context"]
        leaves = _leaves(context)
        _tamper_leaf(context, leaves[position % len(leaves)], item // 7, mask)
        expected = f"signatures[{index}]"
    elif target == "event_payload":
        index = item % len(events)
        leaves = _leaves(events[index]["payload"])
        _tamper_leaf(events[index]["payload"], leaves[position % len(leaves)], item // 7, mask)
        expected = f"events[{index}]."
    elif target in ("event_hash", "event_previous_hash"):
        index = item % len(events)
        field = "hash" if target == "event_hash" else "previous_hash"
        events[index][field] = _flip_text(events[index][field], position, mask)
        expected = f"events[{index}]."
    else:
        part = tampered["platform_signature"]
        part["signature"] = _flip_b64(part["signature"], position, mask)
        expected = "platform_signature"

    report = verify_bundle(tampered, ca.root_certificate)
    failed = _failed_names(report)
    assert not report.ok
    assert any(name.startswith(expected) for name in failed), (target, report.to_text())
    if target != "platform_signature":
        assert any(name.startswith("platform_signature") for name in failed)
    for check in report.failures():
        assert check.reason


def test_reason_names_the_broken_event_index(ca: PlatformCA, bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    tampered["events"][7]["payload"]["actor"] = "someone_else"
    report = verify_bundle(_resign(ca, tampered), ca.root_certificate)
    failures = report.failures()
    assert [c.name for c in failures] == ["events[7].hash"]
    assert "audit event #7" in failures[0].reason


def test_removing_an_event_breaks_the_chain_at_that_index(
    ca: PlatformCA, bundle: dict[str, Any]
) -> None:
    tampered = copy.deepcopy(bundle)
    del tampered["events"][4]
    report = verify_bundle(_resign(ca, tampered), ca.root_certificate)
    assert "events[4].previous_hash" in _failed_names(report)
    assert "events[4].index" in _failed_names(report)


def test_a_signature_over_another_document_is_named(ca: PlatformCA, bundle: dict[str, Any]) -> None:
    other = canonical_document("presale-hunan", "2024.2", {"price_fen": 1})
    person = buyer()
    stray = sign_once(ca, person, context_for(person, other.document_hash, NOW), NOW)
    tampered = copy.deepcopy(bundle)
    tampered["signatures"][0] = stray.to_dict()
    report = verify_bundle(_resign(ca, tampered), ca.root_certificate)
    failures = report.failures()
    assert [c.name for c in failures] == ["signatures[0].document_hash"]
    assert "signature #1 (buyer)" in failures[0].reason
    assert other.document_hash in failures[0].reason


def test_a_changed_document_names_the_document_hash(ca: PlatformCA, bundle: dict[str, Any]) -> None:
    tampered = copy.deepcopy(bundle)
    changed = canonical_document("presale-hunan", "2024.2", {**document().terms(), "price_fen": 1})
    tampered["document"]["canonical_json"] = changed.canonical_text
    report = verify_bundle(_resign(ca, tampered), ca.root_certificate)
    failures = report.failures()
    assert [c.name for c in failures] == ["document.hash"]
    assert "the contract text was changed" in failures[0].reason


def test_a_foreign_signature_in_a_bundle_is_named(
    ca: PlatformCA, bundle: dict[str, Any], tmp_path: Path
) -> None:
    foreign = new_ca(tmp_path / "foreign", org_name="Foreign Platform")
    person = buyer()
    stray = sign_once(foreign, person, context_for(person, document().document_hash, NOW), NOW)
    tampered = copy.deepcopy(bundle)
    tampered["signatures"][0] = stray.to_dict()
    report = verify_bundle(_resign(ca, tampered), ca.root_certificate)
    failures = report.failures()
    assert [c.name for c in failures] == ["signatures[0].chain"]
    assert "foreign certificate" in failures[0].reason
    # And a bundle signed entirely by another platform is foreign as a whole.
    whole = verify_bundle(_resign(foreign, tampered), ca.root_certificate)
    assert "platform_signature.chain" in _failed_names(whole)


def test_verifying_against_another_root_fails(bundle: dict[str, Any], tmp_path: Path) -> None:
    other = new_ca(tmp_path / "other", org_name="Other Root")
    report = verify_bundle(bundle, other.root_certificate)
    assert not report.ok
    assert {f"signatures[{i}].chain" for i in range(3)} <= _failed_names(report)
    assert "platform_signature.chain" in _failed_names(report)


@pytest.mark.parametrize(
    "bad",
    [None, [], "text", {"format": "something else"}, {"format": "wangqian.evidence-bundle/v1"}],
)
def test_malformed_bundles_are_reported_not_raised(ca: PlatformCA, bad: Any) -> None:
    report = verify_bundle(bad, ca.root_certificate)
    assert not report.ok
    assert report.failures()[0].reason


def test_unusable_root_is_reported(bundle: dict[str, Any]) -> None:
    report = verify_bundle(bundle, b"not a certificate")
    assert not report.ok
    assert report.checks[0].name == "root"


def test_build_refuses_parts_that_do_not_belong_together(ca: PlatformCA) -> None:
    doc = document()
    records = sign_parties(ca, doc)
    events = chain_events(ORDER_ID, event_payloads(3))
    other = canonical_document("t", "1", {**doc.terms(), "price_fen": 2})
    later = NOW + timedelta(minutes=5)
    with pytest.raises(EvidenceError, match="another document"):
        build_bundle(ca, other, ORDER_ID, records, events, later)
    with pytest.raises(EvidenceError, match="another order"):
        build_bundle(ca, doc, "ord_other", records, events, later)
    with pytest.raises(EvidenceError, match="chain is broken"):
        build_bundle(ca, doc, ORDER_ID, records, events[1:], later)
    with pytest.raises(EvidenceError, match="later than the bundle"):
        build_bundle(ca, doc, ORDER_ID, records, events, NOW)


def test_event_chain_helpers() -> None:
    payloads = event_payloads(3)
    chain = chain_events(ORDER_ID, payloads)
    assert chain[0]["previous_hash"] == genesis_hash(ORDER_ID)
    assert [e["index"] for e in chain] == [0, 1, 2]
    assert all(b["previous_hash"] == a["hash"] for a, b in itertools.pairwise(chain))
    assert next_event(ORDER_ID, chain[-1], {"type": "filed"})["previous_hash"] == chain[-1]["hash"]
    assert verify_event_chain(ORDER_ID, chain)[0].ok
    # The genesis value binds the chain to its order.
    moved = verify_event_chain("ord_other", chain)
    assert [c.name for c in moved] == ["events[0].previous_hash"]
    assert genesis_hash(ORDER_ID) != genesis_hash("ord_other")
