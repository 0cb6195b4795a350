"""The platform CA: keystore at rest, certificates it issues, rotation, key lifetime."""

from __future__ import annotations

import gc
import stat
import weakref
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import signing.signatures
from signing.ca import PlatformCA, create_keystore, load_keystore
from signing.certificates import (
    EVENT_LIFETIME,
    OID_ORDER_ID,
    OID_SIGNER_ROLE,
    CertificateIssueError,
    Company,
    Signer,
    certificate_credit_code,
    certificate_order_id,
    certificate_role,
    certificate_signer_id_hash,
    signer_id_hash,
)
from signing.event_chain import chain_events
from signing.evidence import build_bundle
from signing.evidence_verify import verify_bundle
from signing.gb_codes import credit_code_is_valid
from signing.keystore import KeystoreExistsError, KeystorePassphraseError
from signing.signatures import SignatureRecord, sign_once, verify_signature
from signing.signing_context import SignerRole
from tests.signing.helpers import (
    BUYER_ID_NUMBER,
    COMPANY,
    ID_HASH_KEY,
    NOW,
    ORDER_ID,
    PASSPHRASE,
    buyer,
    context_for,
    document,
    event_payloads,
    new_ca,
    sign_parties,
)


def test_keystore_files_hold_no_unencrypted_private_key(ca: PlatformCA) -> None:
    files = [p for p in ca.directory.rglob("*") if p.is_file()]
    key_files = [p for p in files if p.name.endswith(".key.pem")]
    assert {p.name for p in key_files} >= {
        "root.key.pem",
        "issuing-g1.key.pem",
        "platform-g1.key.pem",
        f"{COMPANY.credit_code}.key.pem",
    }
    for path in files:
        text = path.read_bytes()
        assert b"BEGIN PRIVATE KEY" not in text, path
        assert b"BEGIN EC PRIVATE KEY" not in text, path
    for path in key_files:
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pytest.raises(TypeError):  # encrypted: unreadable without a password
            serialization.load_pem_private_key(path.read_bytes(), None)


def test_wrong_passphrase_fails_cleanly(ca: PlatformCA) -> None:
    with pytest.raises(KeystorePassphraseError, match="wrong passphrase"):
        load_keystore(ca.directory, "not the passphrase")
    with pytest.raises(KeystorePassphraseError, match="empty"):
        load_keystore(ca.directory, "")


def test_keystore_loads_back_with_the_same_certificates(ca: PlatformCA) -> None:
    loaded = load_keystore(ca.directory, PASSPHRASE)
    assert loaded.root_certificate == ca.root_certificate
    assert loaded.issuing_certificate == ca.issuing_certificate
    assert loaded.platform_certificate == ca.platform_certificate
    assert loaded.seal_certificate(COMPANY.credit_code) == ca.seal_certificate(COMPANY.credit_code)
    assert (ca.directory / "root.crt.pem").read_bytes() == ca.root_pem()


def test_creating_over_an_existing_keystore_is_refused(ca: PlatformCA) -> None:
    with pytest.raises(KeystoreExistsError):
        create_keystore(ca.directory, PASSPHRASE, NOW, "Other")


def test_ca_hierarchy(ca: PlatformCA) -> None:
    root, issuing = ca.root_certificate, ca.issuing_certificate
    root_constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert root_constraints.ca and root_constraints.path_length == 1
    issuing.verify_directly_issued_by(root)
    constraints = issuing.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert isinstance(issuing.public_key(), ec.EllipticCurvePublicKey)
    assert issuing.public_key().curve.name == "secp256r1"
    ca.platform_certificate.verify_directly_issued_by(issuing)
    assert certificate_role(ca.platform_certificate) == SignerRole.PLATFORM


def test_event_certificate_names_the_signer_without_the_id_number(ca: PlatformCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    person = buyer()
    certificate = ca.issue_event_certificate(key.public_key(), person, ORDER_ID, NOW)
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert BUYER_ID_NUMBER.encode() not in der
    assert BUYER_ID_NUMBER[:17].encode() not in der
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "张三"
    assert certificate_signer_id_hash(certificate) == person.id_hash
    assert certificate_role(certificate) == SignerRole.BUYER
    assert certificate_order_id(certificate) == ORDER_ID
    for oid in (OID_SIGNER_ROLE, OID_ORDER_ID):
        assert not certificate.extensions.get_extension_for_oid(oid).critical
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    assert not usage.key_cert_sign
    assert certificate.not_valid_before_utc == NOW
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == EVENT_LIFETIME
    # Readers check certificates when they open a PDF: years, not the act's 30 minutes.
    assert timedelta(days=3 * 365) == EVENT_LIFETIME
    certificate.verify_directly_issued_by(ca.issuing_certificate)


def test_seal_certificate_is_long_lived_and_names_the_company(ca: PlatformCA) -> None:
    certificate = ca.seal_certificate(COMPANY.credit_code)
    assert certificate is not None
    assert certificate_role(certificate) == SignerRole.SEAL
    assert certificate_credit_code(certificate) == COMPANY.credit_code
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime >= timedelta(days=3 * 365)


def test_subject_data_is_validated() -> None:
    with pytest.raises(CertificateIssueError, match="never the ID number"):
        Signer("张三", BUYER_ID_NUMBER, SignerRole.BUYER)
    with pytest.raises(CertificateIssueError, match="buyer or a seller"):
        Signer("张三", "a" * 64, SignerRole.SEAL)
    with pytest.raises(CertificateIssueError, match="credit code"):
        Company("某公司", "91440300708461136X")
    assert credit_code_is_valid("91440300708461136T")
    assert not credit_code_is_valid("91440300708461136t")


def test_signer_id_hash_is_keyed_and_normalized() -> None:
    lower = signer_id_hash(BUYER_ID_NUMBER.lower(), ID_HASH_KEY)
    assert lower == signer_id_hash(BUYER_ID_NUMBER, ID_HASH_KEY)
    assert lower != signer_id_hash(BUYER_ID_NUMBER, b"another-key-of-32-bytes-length!!")
    assert len(lower) == 64


def test_expired_issuing_ca_refuses_to_issue(ca: PlatformCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    later = ca.issuing_certificate.not_valid_after_utc + timedelta(seconds=1)
    with pytest.raises(CertificateIssueError, match="rotate"):
        ca.issue_event_certificate(key.public_key(), buyer(), ORDER_ID, later)


class _TrackedKey:
    """Stands in for the per-signing key so the test can watch its lifetime."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, data: bytes, algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        return self._key.sign(data, algorithm)


def test_per_signing_key_is_used_once_and_dropped(
    ca: PlatformCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[weakref.ref[_TrackedKey]] = []

    def tracked_key() -> Any:
        key = _TrackedKey(ec.generate_private_key(ec.SECP256R1()))
        made.append(weakref.ref(key))
        return key

    monkeypatch.setattr(signing.signatures, "_new_event_key", tracked_key)
    doc = document()
    person = buyer()
    record = sign_once(ca, person, context_for(person, doc.document_hash, NOW), NOW)
    gc.collect()
    assert len(made) == 1
    assert made[0]() is None, "the per-signing key outlived sign_once"
    assert verify_signature(record, ca.root_certificate).ok
    for name in SignatureRecord.__slots__:
        value = getattr(record, name)
        assert not isinstance(value, ec.EllipticCurvePrivateKey)
    text = str(record.to_dict())
    assert "PRIVATE KEY" not in text


def test_rotation_keeps_old_signatures_verifiable(tmp_path: Path) -> None:
    ca = new_ca(tmp_path / "keystore")
    doc = document()
    before = sign_parties(ca, doc, NOW)
    old_issuing = ca.issuing_certificate

    rotated_at = NOW + timedelta(hours=1)
    new_issuing = ca.rotate_issuing_ca(rotated_at)
    assert new_issuing != old_issuing
    assert "G2" in new_issuing.subject.rfc4514_string()
    new_issuing.verify_directly_issued_by(ca.root_certificate)
    assert not (tmp_path / "keystore" / "issuing-g1.key.pem").exists()
    assert (tmp_path / "keystore" / "issuing-g1.crt.pem").exists()

    after_time = NOW + timedelta(hours=2)
    person = buyer()
    after = sign_once(ca, person, context_for(person, doc.document_hash, after_time), after_time)
    assert after.certificate_chain[1] == new_issuing
    for record in [*before, after]:
        assert verify_signature(record, ca.root_certificate).ok

    reloaded = load_keystore(tmp_path / "keystore", PASSPHRASE)
    assert reloaded.issuing_certificates == (old_issuing, new_issuing)
    assert reloaded.issuing_certificate == new_issuing
    # Signatures from both generations in one bundle: generation 1's seal and seller,
    # generation 2's buyer (the party list has each once).
    bundle = build_bundle(
        reloaded,
        doc,
        ORDER_ID,
        [after, *before[1:]],
        chain_events(ORDER_ID, event_payloads(3)),
        after_time + timedelta(minutes=1),
    )
    report = verify_bundle(bundle, reloaded.root_pem())
    assert report.ok, report.to_text()
