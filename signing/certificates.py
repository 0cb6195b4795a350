"""The platform's certificate profile: who a certificate names, how it is built, how it is read.

Every certificate is ECDSA P-256 with SHA-256, built by :func:`build_certificate`; the
makers here (root, issuing CA generation, platform signing, time-stamping) are what
:class:`signing.ca.PlatformCA` issues with, the ``certificate_*`` readers are what
verifiers use to learn a certificate's role, order, signer or company, and the ``load_*``
functions read a certificate from bytes (strictly, for what a signature embeds).

An event certificate's private key exists only during its signing act (see
:mod:`signing.signatures`): that, not the certificate's lifetime, is what keeps it from
signing anything else. The certificate itself stays valid for years because PDF readers
(poppler's ``pdfsig``, Acrobat without a timestamp policy) check certificates at the time
they open the file, not at the signing time; a 30-minute certificate would turn every
buyer's PDF signature "expired" half an hour after the contract was signed.

Certificate extensions live under the private arc ``2.25.134357299568938597985370243577893158989``
(an X.667 UUID OID, owned by construction, for UUID 6514464f-6045-4549-9e37-13ff3195004d):

- ``<arc>.1`` signer role, UTF8String: ``buyer``, ``seller``, ``seal`` or ``platform``;
- ``<arc>.2`` order id, UTF8String, event certificates only.

Both are non-critical, so generic verifiers (OpenSSL) accept the certificates. Event
certificate subjects carry the signer's name and a keyed hash of the ID number in
``serialNumber``, never the ID number itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.canonical import utc_seconds
from signing.gb_codes import credit_code_is_valid
from signing.pii import normalize_id_number
from signing.signing_context import SignerRole

OID_ARC = "2.25.134357299568938597985370243577893158989"
OID_SIGNER_ROLE = x509.ObjectIdentifier(f"{OID_ARC}.1")
OID_ORDER_ID = x509.ObjectIdentifier(f"{OID_ARC}.2")

ROOT_LIFETIME = timedelta(days=20 * 365)
ISSUING_LIFETIME = timedelta(days=5 * 365)
PLATFORM_LIFETIME = timedelta(days=2 * 365)
SEAL_LIFETIME = timedelta(days=3 * 365)
EVENT_LIFETIME = timedelta(days=3 * 365)
TSA_LIFETIME = timedelta(days=2 * 365)
OID_TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING

_KEYED_HASH = re.compile(r"[0-9a-f]{32,64}")


class CertificateIssueError(ValueError):
    """A certificate cannot be issued (bad subject data, expired issuing CA, ...)."""


def signer_id_hash(id_number: str, key: bytes) -> str:
    """Keyed hash of a resident ID number for certificate subjects and signing contexts.

    HMAC-SHA256 under a platform secret with its own domain label, so the value printed
    in public certificates cannot be linked to other keyed indexes or brute-forced over
    the small space of ID numbers without the key.
    """
    normalized = normalize_id_number(id_number)
    if not normalized:
        raise ValueError("id_number is empty")
    if len(key) < 16:
        raise ValueError("the ID hash key must be at least 16 bytes")
    message = b"wangqian/signer-id/v1\x00" + normalized.encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Signer:
    """A natural person signing as buyer or seller; ``id_hash`` from :func:`signer_id_hash`."""

    name: str
    id_hash: str
    role: SignerRole

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64:
            raise CertificateIssueError("signer name must be 1-64 characters")
        if not _KEYED_HASH.fullmatch(self.id_hash):
            raise CertificateIssueError(
                "id_hash must be a keyed hash (32-64 lowercase hex), never the ID number"
            )
        role = SignerRole(self.role)
        if role not in (SignerRole.BUYER, SignerRole.SELLER):
            raise CertificateIssueError("a natural-person signer is a buyer or a seller")
        object.__setattr__(self, "role", role)


@dataclass(frozen=True, slots=True)
class Company:
    """A developer company that seals contracts, named by its unified social credit code."""

    name: str
    credit_code: str

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64:
            raise CertificateIssueError("company name must be 1-64 characters")
        if not credit_code_is_valid(self.credit_code):
            raise CertificateIssueError(
                f"{self.credit_code!r} is not a valid unified social credit code"
            )


@dataclass(frozen=True, slots=True)
class CertifiedKey:
    """A private key and the certificate issued for it."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def utf8_extension(oid: x509.ObjectIdentifier, value: str) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(oid, asn1_core.UTF8String(value).dump())


def _read_utf8_extension(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    try:
        extension = certificate.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):
        return None
    try:
        return asn1_core.UTF8String.load(value.value, strict=True).native
    except ValueError:
        return None


def certificate_role(certificate: x509.Certificate) -> SignerRole | None:
    """The signer role a certificate was issued for, or None if it carries none."""
    text = _read_utf8_extension(certificate, OID_SIGNER_ROLE)
    try:
        return SignerRole(text) if text is not None else None
    except ValueError:
        return None


def certificate_order_id(certificate: x509.Certificate) -> str | None:
    return _read_utf8_extension(certificate, OID_ORDER_ID)


def certificate_signer_id_hash(certificate: x509.Certificate) -> str | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(values[0].value) if values else None


def certificate_credit_code(certificate: x509.Certificate) -> str | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    return str(values[0].value) if values else None


def chains_to(
    certificate: x509.Certificate, issuers: Sequence[x509.Certificate], root: x509.Certificate
) -> bool:
    """``certificate`` was issued by one of ``issuers``, itself issued by ``root``."""
    for issuer in issuers:
        try:
            certificate.verify_directly_issued_by(issuer)
            issuer.verify_directly_issued_by(root)
        except Exception:  # noqa: S112 - not this issuer (or not a usable one): the next
            continue
        return True
    return False


def load_root_certificate(root: bytes | str | x509.Certificate) -> x509.Certificate:
    """Accept a root as a certificate object, PEM text/bytes or DER bytes."""
    if isinstance(root, x509.Certificate):
        return root
    data = root.encode("ascii") if isinstance(root, str) else bytes(root)
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_certificate_der(der: bytes) -> x509.Certificate:
    """Load a DER certificate, refusing what RFC 5280 forbids before cryptography warns."""
    try:
        parsed = asn1_x509.Certificate.load(der, strict=True)
        serial = parsed["tbs_certificate"]["serial_number"].native
    except Exception as error:
        raise ValueError(f"malformed certificate: {error}") from error
    if serial <= 0:
        raise ValueError("certificate serial number is not positive (RFC 5280)")
    certificate = x509.load_der_x509_certificate(der)
    try:
        # cryptography parses these lazily; surface damage now, as a malformed certificate.
        _ = (certificate.extensions, certificate.subject, certificate.issuer)
        certificate.public_key()
    except Exception as error:
        raise ValueError(f"malformed certificate: {error}") from error
    return certificate


def load_certificate_pem(text: str) -> x509.Certificate:
    """Load one PEM certificate with the same checks as :func:`load_certificate_der`."""
    lines = text.strip().splitlines()
    if (
        len(lines) < 3
        or lines[0] != "-----BEGIN CERTIFICATE-----"
        or lines[-1] != "-----END CERTIFICATE-----"
    ):
        raise ValueError("not a single PEM certificate")
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError as error:
        raise ValueError(f"PEM certificate body is not base64: {error}") from error
    return load_certificate_der(der)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ski(public_key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def build_certificate(
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: CertifiedKey | None,
    signing_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    lifetime: timedelta,
    ca_path_length: int | None,
    extra: list[x509.ExtensionType] | None = None,
    critical_extra: list[x509.ExtensionType] | None = None,
) -> x509.Certificate:
    not_before = utc_seconds(now)
    not_after = not_before + lifetime
    if issuer is not None:
        issuer_expiry = issuer.certificate.not_valid_after_utc
        if issuer_expiry <= not_before or issuer.certificate.not_valid_before_utc > not_before:
            raise CertificateIssueError(
                f"issuing certificate '{issuer.certificate.subject.rfc4514_string()}' is not "
                "valid now; rotate the issuing CA"
            )
        # A certificate outliving its issuer would be unverifiable for its last stretch.
        not_after = min(not_after, issuer_expiry)
    is_ca = ca_path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=ca_path_length), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=not is_ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        .add_extension(_ski(public_key), False)
    )
    authority_key = issuer.certificate.public_key() if issuer else public_key
    assert isinstance(authority_key, ec.EllipticCurvePublicKey)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key), False
    )
    for extension in extra or []:
        builder = builder.add_extension(extension, False)
    for extension in critical_extra or []:
        builder = builder.add_extension(extension, True)
    return builder.sign(signing_key, hashes.SHA256(), ecdsa_deterministic=True)


def new_root(org_name: str, now: datetime) -> CertifiedKey:
    key = new_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org_name} Root CA"),
        ]
    )
    certificate = build_certificate(
        subject=subject,
        public_key=key.public_key(),
        issuer=None,
        signing_key=key,
        now=now,
        lifetime=ROOT_LIFETIME,
        ca_path_length=1,
    )
    return CertifiedKey(certificate, key)


def new_issuing(root: CertifiedKey, org_name: str, generation: int, now: datetime) -> CertifiedKey:
    key = new_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
            # Distinct names per generation keep chain building unambiguous for any tool.
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org_name} Issuing CA G{generation}"),
        ]
    )
    certificate = build_certificate(
        subject=subject,
        public_key=key.public_key(),
        issuer=root,
        signing_key=root.private_key,
        now=now,
        lifetime=ISSUING_LIFETIME,
        ca_path_length=0,
    )
    return CertifiedKey(certificate, key)


def _new_service_key(
    issuing: CertifiedKey,
    org_name: str,
    common_name: str,
    now: datetime,
    lifetime: timedelta,
    **extensions: list[x509.ExtensionType],
) -> CertifiedKey:
    """A key of the platform's own (signing, time-stamping) under the issuing CA."""
    key = new_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    certificate = build_certificate(
        subject=subject,
        public_key=key.public_key(),
        issuer=issuing,
        signing_key=issuing.private_key,
        now=now,
        lifetime=lifetime,
        ca_path_length=None,
        **extensions,
    )
    return CertifiedKey(certificate, key)


def new_platform(
    issuing: CertifiedKey, org_name: str, generation: int, now: datetime
) -> CertifiedKey:
    return _new_service_key(
        issuing,
        org_name,
        f"{org_name} Platform Signing G{generation}",
        now,
        PLATFORM_LIFETIME,
        extra=[utf8_extension(OID_SIGNER_ROLE, SignerRole.PLATFORM.value)],
    )


def new_tsa(issuing: CertifiedKey, org_name: str, generation: int, now: datetime) -> CertifiedKey:
    # RFC 3161 section 2.3: exactly id-kp-timeStamping, marked critical.
    return _new_service_key(
        issuing,
        org_name,
        f"{org_name} TSA G{generation}",
        now,
        TSA_LIFETIME,
        critical_extra=[x509.ExtendedKeyUsage([OID_TIME_STAMPING])],
    )
