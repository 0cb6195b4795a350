"""Detached CMS signatures: round trip, OpenSSL interop, and each way they must fail."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives.asymmetric import ec

from signing.ca import PlatformCA
from signing.cms import sign_detached
from signing.cms_verify import verify_detached
from signing.signatures import (
    SignatureRecord,
    SigningError,
    platform_sign,
    seal_sign,
    sign_once,
    verify_platform_signature,
    verify_signature,
)
from signing.signing_context import SignerRole, SigningContext
from tests.signing.helpers import (
    COMPANY,
    NOW,
    buyer,
    context_for,
    document,
    new_ca,
    seal_context,
    seller,
)


def _buyer_record(ca: PlatformCA) -> SignatureRecord:
    person = buyer()
    return sign_once(ca, person, context_for(person, document().document_hash, NOW), NOW)


def _failed(checks: object) -> dict[str, str]:
    return {c.name: c.reason for c in checks if not c.ok}  # type: ignore[attr-defined]


def test_sign_and_verify_round_trip(ca: PlatformCA) -> None:
    record = _buyer_record(ca)
    result = verify_signature(record, ca.root_certificate)
    assert result.ok, _failed(result.checks)
    names = {check.name for check in result.checks}
    assert {"message_digest", "signature", "chain", "validity", "certificate_role"} <= names
    assert result.signing_time == NOW
    assert record.certificate_chain == (record.signer_certificate, ca.issuing_certificate)
    assert SignatureRecord.from_dict(record.to_dict()) == record


def test_signed_attributes_are_content_type_digest_and_signing_time(ca: PlatformCA) -> None:
    record = _buyer_record(ca)
    info = asn1_cms.ContentInfo.load(record.signature_der)
    signed_data = info["content"]
    assert signed_data["encap_content_info"]["content"].native is None  # detached
    attributes = {
        a["type"].native: a["values"][0].native
        for a in signed_data["signer_infos"][0]["signed_attrs"]
    }
    assert set(attributes) == {"content_type", "message_digest", "signing_time"}
    assert attributes["signing_time"] == NOW
    assert len(signed_data["certificates"]) == 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl binary is not installed")
def test_openssl_verifies_party_seal_and_platform_signatures(
    ca: PlatformCA, tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - guarded by skipif
        pytest.skip("the openssl binary is not installed")
    doc = document()
    record = _buyer_record(ca)
    seal = seal_sign(ca, COMPANY.credit_code, seal_context(doc.document_hash, NOW), NOW)
    receipt = b'{"receipt":"contract filed"}'
    platform = platform_sign(ca, receipt, NOW)
    root = tmp_path / "root.pem"
    root.write_bytes(ca.root_pem())
    cases = [
        (record.signature_der, record.context.canonical_bytes()),
        (seal.signature_der, seal.context.canonical_bytes()),
        (platform.signature_der, receipt),
    ]
    for index, (signature, content) in enumerate(cases):
        (tmp_path / f"sig{index}.der").write_bytes(signature)
        (tmp_path / f"ctx{index}.json").write_bytes(content)
        command = [
            openssl, "cms", "-verify", "-binary", "-inform", "DER",
            "-in", str(tmp_path / f"sig{index}.der"),
            "-content", str(tmp_path / f"ctx{index}.json"),
            "-CAfile", str(root), "-purpose", "any",
            # Certificates are checked at the signing time, whatever the clock says now.
            "-attime", str(int(NOW.timestamp()) + 60),
            "-out", str(tmp_path / f"out{index}"),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert "Verification successful" in done.stderr
        assert (tmp_path / f"out{index}").read_bytes() == content
        # And OpenSSL refuses the same signature over changed content.
        (tmp_path / f"ctx{index}.json").write_bytes(content.replace(b"}", b" }", 1))
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode != 0


def test_changed_context_fails_the_message_digest(ca: PlatformCA) -> None:
    record = _buyer_record(ca)
    forged = replace(record, context=replace(record.context, client_ip="198.51.100.99"))
    failed = _failed(verify_signature(forged, ca.root_certificate).checks)
    assert "message_digest" in failed
    assert "content was changed" in failed["message_digest"]


def test_expired_certificate_fails(ca: PlatformCA) -> None:
    person = buyer()
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = ca.issue_event_certificate(key.public_key(), person, "ord_x", NOW)
    late = certificate.not_valid_after_utc + timedelta(minutes=1)
    context = context_for(person, document().document_hash, late, order_id="ord_x")
    der = sign_detached(context.canonical_bytes(), certificate, key, [ca.issuing_certificate], late)
    record = SignatureRecord(context, der, (certificate, ca.issuing_certificate))
    failed = _failed(verify_signature(record, ca.root_certificate).checks)
    assert set(failed) == {"validity"}
    assert "not valid at the signing time" in failed["validity"]
    assert "expired" in failed["validity"]


def test_certificate_from_a_foreign_ca_fails(ca: PlatformCA, tmp_path: Path) -> None:
    foreign = new_ca(tmp_path / "foreign", org_name="Foreign Platform")
    record = _buyer_record(foreign)
    assert verify_signature(record, foreign.root_certificate).ok
    failed = _failed(verify_signature(record, ca.root_certificate).checks)
    assert set(failed) == {"chain"}
    assert "foreign certificate" in failed["chain"]
    assert "Foreign Platform Issuing CA G1" in failed["chain"]


def test_a_party_certificate_cannot_pass_for_another_role_or_order(ca: PlatformCA) -> None:
    person = seller()
    doc = document()
    record = sign_once(ca, person, context_for(person, doc.document_hash, NOW), NOW)
    assert verify_signature(record, ca.root_certificate).ok
    # Re-sign a context claiming to be the buyer with a certificate issued for the seller:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = ca.issue_event_certificate(key.public_key(), person, "ord_other", NOW)
    claimed = SigningContext(
        doc.document_hash, "ord_7Gm2kQ9xTbP4", SignerRole.BUYER, person.id_hash, NOW,
        "chl", "::1", "ua",
    )  # fmt: skip
    der = sign_detached(claimed.canonical_bytes(), certificate, key, [ca.issuing_certificate], NOW)
    forged = SignatureRecord(claimed, der, (certificate, ca.issuing_certificate))
    failed = _failed(verify_signature(forged, ca.root_certificate).checks)
    assert set(failed) == {"certificate_role", "certificate_subject"}
    assert "issued for role seller" in failed["certificate_role"]
    assert "order 'ord_other'" in failed["certificate_subject"]


def test_platform_signature_needs_the_platform_certificate(ca: PlatformCA) -> None:
    content = b"receipt"
    good = platform_sign(ca, content, NOW)
    assert verify_platform_signature(good, content, ca.root_certificate).ok
    seal = ca._seal_key(COMPANY.credit_code)
    assert seal is not None
    der = sign_detached(content, seal.certificate, seal.private_key, [ca.issuing_certificate], NOW)
    forged = replace(
        good, signature_der=der, certificate_chain=(seal.certificate, ca.issuing_certificate)
    )
    failed = _failed(verify_platform_signature(forged, content, ca.root_certificate).checks)
    assert set(failed) == {"certificate_role"}


@pytest.mark.parametrize(
    "garbage", [b"", b"\x30\x00", b"not DER at all", b"\x30\x82\xff\xff" + b"\x00" * 10]
)
def test_garbage_is_reported_not_raised(ca: PlatformCA, garbage: bytes) -> None:
    result = verify_detached(garbage, b"content", ca.root_certificate)
    assert not result.ok
    assert result.checks[0].name == "structure"
    assert "malformed" in result.checks[0].reason


def test_sign_once_refuses_an_inconsistent_context(ca: PlatformCA) -> None:
    person = buyer()
    doc = document()
    with pytest.raises(SigningError, match="role"):
        sign_once(ca, seller(), context_for(person, doc.document_hash, NOW), NOW)
    with pytest.raises(SigningError, match="not now"):
        later = NOW + timedelta(seconds=5)
        sign_once(ca, person, context_for(person, doc.document_hash, NOW), later)
    with pytest.raises(SigningError, match="seal"):
        seal_sign(ca, COMPANY.credit_code, context_for(person, doc.document_hash, NOW), NOW)


def test_expired_seal_certificate_refuses_to_sign(ca: PlatformCA) -> None:
    seal = ca.seal_certificate(COMPANY.credit_code)
    assert seal is not None
    late = seal.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(SigningError, match="expired"):
        seal_sign(ca, COMPANY.credit_code, seal_context(document().document_hash, late), late)


def test_signing_context_refuses_an_id_number_and_round_trips(ca: PlatformCA) -> None:
    record = _buyer_record(ca)
    assert SigningContext.from_dict(record.context.to_dict()) == record.context
    with pytest.raises(ValueError, match="never the ID number"):
        replace(record.context, signer_id_hash="11010519491231002X")
    with pytest.raises(ValueError, match="fields"):
        SigningContext.from_dict({**record.context.to_dict(), "extra": "x"})
