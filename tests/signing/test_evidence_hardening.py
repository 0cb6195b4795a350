"""Hardening from an adversarial review: each test failed while its defect was present."""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from signing.ca import PlatformCA
from signing.canonical import canonical_document, canonical_json
from signing.certificates import Company
from signing.event_chain import chain_events
from signing.evidence import EvidenceError, build_bundle
from signing.evidence_verify import verify_bundle
from signing.signatures import platform_sign, seal_sign
from signing.verify import main
from tests.signing.helpers import (
    NOW,
    ORDER_ID,
    document,
    event_payloads,
    new_ca,
    seal_context,
    sign_parties,
)

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --- F1: a bundle verifies VALID without the buyer's (or any party's) assent ---------------


def test_bundle_with_only_the_company_seal_is_not_valid(
    ca: PlatformCA, bundle: dict[str, Any]
) -> None:
    """The buyer never signed: the platform refuses to build it, and a bundle assembled by
    hand (and platform-signed, as an insider could) does not verify."""
    doc = document()
    buyer_record, seller_record, seal_record = sign_parties(ca, doc)
    events = chain_events(ORDER_ID, event_payloads(3))
    later = NOW + timedelta(minutes=3)
    with pytest.raises(EvidenceError, match="张三 \\(buyer\\) never signed"):
        build_bundle(ca, doc, ORDER_ID, [seller_record, seal_record], events, later)
    with pytest.raises(EvidenceError, match="second signature"):
        build_bundle(ca, doc, ORDER_ID, [buyer_record, buyer_record, seal_record], events, later)

    def resigned(signatures: list[dict[str, Any]]) -> dict[str, Any]:
        unsigned = {k: v for k, v in bundle.items() if k != "platform_signature"}
        unsigned["signatures"] = signatures
        signature = platform_sign(ca, canonical_json(unsigned), NOW + timedelta(minutes=3))
        return {**unsigned, "platform_signature": signature.to_dict()}

    seal_only = verify_bundle(resigned([bundle["signatures"][2]]), ca.root_certificate)
    assert not seal_only.ok
    assert {c.name for c in seal_only.failures()} == {"parties"}
    assert any("张三 (buyer) never signed" in c.reason for c in seal_only.failures())
    twice = [bundle["signatures"][0], bundle["signatures"][0], *bundle["signatures"][1:]]
    report = verify_bundle(resigned(twice), ca.root_certificate)
    assert [c.name for c in report.failures()] == ["signatures[1].party"]


def test_a_seal_of_another_company_is_not_the_sellers(
    ca: PlatformCA, bundle: dict[str, Any]
) -> None:
    other = Company("别家置业有限公司", "91440300708461136T")
    ca.issue_seal_certificate(other, NOW - timedelta(days=1))
    doc = document()
    moment = NOW + timedelta(minutes=2)
    foreign_seal = seal_sign(ca, other.credit_code, seal_context(doc.document_hash, moment), moment)
    unsigned = {k: v for k, v in bundle.items() if k != "platform_signature"}
    unsigned["signatures"] = [*bundle["signatures"][:2], foreign_seal.to_dict()]
    signature = platform_sign(ca, canonical_json(unsigned), NOW + timedelta(minutes=3))
    report = verify_bundle(
        {**unsigned, "platform_signature": signature.to_dict()}, ca.root_certificate
    )
    failed = {c.name for c in report.failures()}
    assert failed == {"signatures[2].party", "parties"}


# --- F2: the verify command accepts JSON with duplicate keys -------------------------------


def test_verify_command_refuses_duplicate_keys(
    ca: PlatformCA, bundle: dict[str, Any], tmp_path: Path
) -> None:
    """A first "document" (price 1 fen) shadowed by the genuine one still verifies VALID.

    Python keeps the last duplicate; a reader, or a parser keeping the first, sees the fake.
    """
    terms = document().terms()
    terms["price_fen"] = 1
    fake = canonical_document("presale-hunan", "2024.2", terms)
    fake_part = json.dumps(
        {"canonical_json": fake.canonical_text, "sha256": fake.document_hash}, ensure_ascii=False
    )
    text = json.dumps(bundle, ensure_ascii=False)
    text = text.replace('"document": {', f'"document": {fake_part}, "document": {{', 1)
    assert text.count('"document":') == 2
    (tmp_path / "bundle.json").write_text(text, encoding="utf-8")
    (tmp_path / "root.pem").write_bytes(ca.root_pem())
    assert main([str(tmp_path / "bundle.json"), "--root", str(tmp_path / "root.pem")]) == 1


# --- F3: the verify command crashes on deeply nested JSON ----------------------------------


def test_verify_command_reports_deeply_nested_json(ca: PlatformCA, tmp_path: Path) -> None:
    (tmp_path / "bundle.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "root.pem").write_bytes(ca.root_pem())
    # Documented: exit 1 when the file cannot be read; today a RecursionError escapes.
    assert main([str(tmp_path / "bundle.json"), "--root", str(tmp_path / "root.pem")]) == 1


# --- F4: the platform_signature section is malleable ---------------------------------------


def test_platform_signature_high_s_twin_is_refused(ca: PlatformCA, bundle: dict[str, Any]) -> None:
    """(r, s) -> (r, n - s) is a second valid ECDSA signature; cms.py promises one encoding."""
    tampered = copy.deepcopy(bundle)
    der = base64.b64decode(tampered["platform_signature"]["signature"])
    info = asn1_cms.ContentInfo.load(der)
    signer_info = info["content"]["signer_infos"][0]
    r, s = decode_dss_signature(signer_info["signature"].native)
    signer_info["signature"] = encode_dss_signature(r, _P256_ORDER - s)
    twin = info.dump(force=True)
    assert twin != der
    tampered["platform_signature"]["signature"] = base64.b64encode(twin).decode("ascii")
    assert not verify_bundle(tampered, ca.root_certificate).ok


def test_platform_signature_chain_order_is_fixed(ca: PlatformCA, bundle: dict[str, Any]) -> None:
    """certificate_chain is 'signer certificate first'; the reversed list still verifies."""
    tampered = copy.deepcopy(bundle)
    tampered["platform_signature"]["certificate_chain"].reverse()
    assert not verify_bundle(tampered, ca.root_certificate).ok


# --- F5: rotation keeps the retired platform signing key -----------------------------------


def test_rotation_deletes_the_retired_platform_key(tmp_path: Path) -> None:
    ca = new_ca(tmp_path / "keystore")
    ca.rotate_issuing_ca(NOW)
    assert not (tmp_path / "keystore" / "issuing-g1.key.pem").exists()
    # The module docstring: rotation "deletes generation N's private key". The G1 platform
    # certificate stays valid for up to 2 years and verifiers cannot tell it is retired,
    # so its key left on disk can still sign bundles that verify as VALID.
    assert not (tmp_path / "keystore" / "platform-g1.key.pem").exists()
