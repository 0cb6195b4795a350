"""The platform certificate authority and its keystore.

Hierarchy (all ECDSA P-256, SHA-256)::

    root CA (20 years, path length 1)
      └─ issuing CA generation N (5 years, path length 0)
           ├─ event certificates (事件证书): one per signing act, 3 years (see below)
           ├─ company seal certificates (合同专用章): one per developer company, 3 years
           ├─ the platform signing certificate (receipts, evidence bundles, PDF stamps), 2 years
           └─ the platform time-stamping authority (RFC 3161, EKU timeStamping), 2 years

An event certificate's private key exists only during its signing act (see
:mod:`signing.signatures`): that, not the certificate's lifetime, is what keeps it from
signing anything else. The certificate itself stays valid for years because PDF readers
(poppler's ``pdfsig``, Acrobat without a timestamp policy) check certificates at the time
they open the file, not at the signing time; a 30-minute certificate would turn every
buyer's PDF signature "expired" half an hour after the contract was signed.

Keystore layout (a directory)::

    keystore.json            manifest: format, organization, passphrase KDF salt/params,
                             issuing generations, platform and seal file names
    root.crt.pem             the trust anchor to publish (verifiers need only this file)
    root.key.pem             encrypted PKCS#8
    issuing-gN.crt.pem       every generation's certificate stays, so old chains rebuild
    issuing-gN.key.pem       only the current generation keeps a key
    platform-gN.crt.pem/.key.pem
    tsa-gN.crt.pem/.key.pem  the time-stamping authority (keystores older than it get one
                             on first use: :meth:`PlatformCA.issue_tsa_certificate`)
    seals/<credit code>.crt.pem/.key.pem

Private keys are PKCS#8 PEM encrypted with ``BestAvailableEncryption``. Its PBKDF2 runs a
fixed 2048 iterations, too few for a human passphrase against an offline attacker, so the
file password is derived first with scrypt (N=2**15, r=8, p=1, salt in the manifest); the
resulting base64 string is what ``openssl pkey`` would need to open a key file.

Loading: ``load_keystore(directory, passphrase)`` decrypts every current key once and
keeps them in memory inside a :class:`PlatformCA`; a wrong passphrase raises
:class:`KeystorePassphraseError` and nothing else is touched. Another process that changed
the keystore (rotation, a new seal) becomes visible after loading again.

Rotation: :meth:`PlatformCA.rotate_issuing_ca` makes generation N+1, signed by the same
root, re-issues the platform signing and time-stamping certificates under it, deletes
generation N's private key, and keeps its certificate. Signatures made before rotation
embed their own chain and are verified at their signing time against the unchanged root,
so they stay valid; seal certificates issued under generation N remain usable until they
expire. Rotate at least every two years, before the platform signing certificate expires
(``platform_sign`` refuses an expired one). Rotating the root itself means publishing a
new trust anchor and is deliberately not automated.

Concurrency: signing with a loaded :class:`PlatformCA` only reads it and may be shared
between threads; ``issue_seal_certificate`` and ``rotate_issuing_ca`` change it and its
directory, so run them from one place (an admin command) and reload elsewhere.

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
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.canonical import utc_seconds
from signing.cms import SignerRole
from signing.gb_codes import credit_code_is_valid
from signing.pii import normalize_id_number

KEYSTORE_FORMAT = "wangqian.keystore/v1"

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

_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_MANIFEST = "keystore.json"

_KEYED_HASH = re.compile(r"[0-9a-f]{32,64}")


class KeystoreError(Exception):
    """The keystore cannot be created, read or written."""


class KeystoreExistsError(KeystoreError):
    """create_keystore was pointed at a directory that already holds a keystore."""


class KeystorePassphraseError(KeystoreError):
    """The passphrase does not decrypt the keystore's private keys."""


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
class _CertifiedKey:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def _utf8_extension(oid: x509.ObjectIdentifier, value: str) -> x509.UnrecognizedExtension:
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


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ski(public_key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _build(
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: _CertifiedKey | None,
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


class _FilePassword:
    """The scrypt-stretched passphrase that encrypts the keystore's PKCS#8 files."""

    def __init__(self, passphrase: bytes | str, salt: bytes, n: int, r: int, p: int) -> None:
        secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
        if not secret:
            raise KeystorePassphraseError("the keystore passphrase must not be empty")
        derived = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)
        self._password = base64.b64encode(derived)

    def encrypt(self, key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._password),
        )

    def decrypt(self, pem: bytes, path: Path) -> ec.EllipticCurvePrivateKey:
        try:
            key = serialization.load_pem_private_key(pem, self._password)
        except (ValueError, TypeError) as error:
            raise KeystorePassphraseError(
                f"wrong passphrase: cannot decrypt {path.name} in keystore {path.parent}"
            ) from error
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeystoreError(f"{path} does not hold an EC private key")
        return key


def _write_atomically(path: Path, data: bytes, *, secret: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    descriptor = os.open(temporary, flags, 0o600 if secret else 0o644)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


class PlatformCA:
    """The loaded keystore: root, issuing CA generations, platform and seal keys.

    Obtain one with :func:`create_keystore` or :func:`load_keystore`. Methods that issue
    long-lived certificates or rotate write the keystore directory before returning.
    """

    def __init__(
        self,
        *,
        directory: Path,
        manifest: dict[str, Any],
        file_password: _FilePassword,
        root: _CertifiedKey,
        issuing_certificates: list[x509.Certificate],
        issuing: _CertifiedKey,
        platform: _CertifiedKey,
        seals: dict[str, _CertifiedKey],
        tsa: _CertifiedKey | None = None,
    ) -> None:
        self.directory = directory
        self._manifest = manifest
        self._file_password = file_password
        self._root = root
        self._issuing_certificates = issuing_certificates
        self._issuing = issuing
        self._platform = platform
        self._seals = seals
        self._tsa = tsa

    def __repr__(self) -> str:
        return f"PlatformCA({self.organization!r}, {str(self.directory)!r})"

    @property
    def organization(self) -> str:
        return str(self._manifest["org_name"])

    @property
    def root_certificate(self) -> x509.Certificate:
        return self._root.certificate

    def root_pem(self) -> bytes:
        return _pem(self._root.certificate)

    @property
    def issuing_certificate(self) -> x509.Certificate:
        """The current issuing CA generation."""
        return self._issuing.certificate

    @property
    def issuing_certificates(self) -> tuple[x509.Certificate, ...]:
        """Every issuing CA generation, oldest first."""
        return tuple(self._issuing_certificates)

    @property
    def platform_certificate(self) -> x509.Certificate:
        return self._platform.certificate

    @property
    def tsa_certificate(self) -> x509.Certificate | None:
        """The time-stamping authority's certificate; None in a keystore made before it."""
        return self._tsa.certificate if self._tsa else None

    def issue_tsa_certificate(self, now: datetime) -> x509.Certificate:
        """(Re)issue the time-stamping key under the current issuing CA and store it."""
        generation = len(self._issuing_certificates)
        tsa = _new_tsa(self._issuing, self.organization, generation, now)
        name = f"tsa-g{generation}.key.pem"
        self._store(name, tsa.private_key, tsa.certificate)
        retired = self._manifest.get("tsa")
        self._manifest["tsa"] = {"certificate": name.replace(".key.", ".crt."), "key": name}
        self._write_manifest()
        if retired and retired["key"] != name:
            (self.directory / retired["key"]).unlink(missing_ok=True)
        self._tsa = tsa
        return tsa.certificate

    def issuer_of(self, certificate: x509.Certificate) -> x509.Certificate:
        """The issuing CA generation that signed ``certificate``."""
        for candidate in reversed(self._issuing_certificates):
            if candidate.subject == certificate.issuer:
                try:
                    certificate.verify_directly_issued_by(candidate)
                except Exception:  # noqa: S112 - a same-named CA that did not sign it
                    continue
                return candidate
        raise CertificateIssueError(
            f"'{certificate.subject.rfc4514_string()}' was not issued by this platform CA"
        )

    def issue_event_certificate(
        self,
        public_key: ec.EllipticCurvePublicKey,
        signer: Signer,
        order_id: str,
        now: datetime,
    ) -> x509.Certificate:
        """A certificate binding ``public_key`` to one signer of one order (one act).

        Prefer :func:`signing.signatures.sign_once`, which also makes and discards the key.
        """
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise CertificateIssueError("event certificates are for P-256 keys")
        if not order_id or len(order_id) > 128:
            raise CertificateIssueError("order_id must be 1-128 characters")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.COMMON_NAME, signer.name),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, signer.id_hash),
            ]
        )
        return _build(
            subject=subject,
            public_key=public_key,
            issuer=self._issuing,
            signing_key=self._issuing.private_key,
            now=now,
            lifetime=EVENT_LIFETIME,
            ca_path_length=None,
            extra=[
                _utf8_extension(OID_SIGNER_ROLE, signer.role.value),
                _utf8_extension(OID_ORDER_ID, order_id),
            ],
        )

    def issue_seal_certificate(self, company: Company, now: datetime) -> x509.Certificate:
        """(Re)issue the company's seal key and certificate and store them in the keystore."""
        key = _new_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, company.name),
                x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, company.credit_code),
                x509.NameAttribute(NameOID.COMMON_NAME, company.name),
            ]
        )
        certificate = _build(
            subject=subject,
            public_key=key.public_key(),
            issuer=self._issuing,
            signing_key=self._issuing.private_key,
            now=now,
            lifetime=SEAL_LIFETIME,
            ca_path_length=None,
            extra=[_utf8_extension(OID_SIGNER_ROLE, SignerRole.SEAL.value)],
        )
        stem = f"seals/{company.credit_code}"
        self._store(f"{stem}.key.pem", key, certificate)
        self._manifest["seals"][company.credit_code] = {
            "certificate": f"{stem}.crt.pem",
            "key": f"{stem}.key.pem",
        }
        self._write_manifest()
        self._seals[company.credit_code] = _CertifiedKey(certificate, key)
        return certificate

    def seal_certificate(self, credit_code: str) -> x509.Certificate | None:
        seal = self._seals.get(credit_code)
        return seal.certificate if seal else None

    def rotate_issuing_ca(self, now: datetime) -> x509.Certificate:
        """Start issuing CA generation N+1 (see the module docstring); returns its certificate."""
        generation = len(self._issuing_certificates) + 1
        issuing = _new_issuing(self._root, self.organization, generation, now)
        platform = _new_platform(issuing, self.organization, generation, now)
        self._store(f"issuing-g{generation}.key.pem", issuing.private_key, issuing.certificate)
        self._store(f"platform-g{generation}.key.pem", platform.private_key, platform.certificate)
        retired = self._manifest["issuing"][-1]
        retired_platform_key = self._manifest["platform"]["key"]
        self._manifest["issuing"].append(
            {
                "generation": generation,
                "certificate": f"issuing-g{generation}.crt.pem",
                "key": f"issuing-g{generation}.key.pem",
            }
        )
        self._manifest["platform"] = {
            "certificate": f"platform-g{generation}.crt.pem",
            "key": f"platform-g{generation}.key.pem",
        }
        old_key = retired["key"]
        retired["key"] = None
        self._write_manifest()
        # Only after the manifest no longer points at it: a crash leaves a stray file, not
        # a keystore that names a missing key.
        # The retired platform key goes too: its certificate stays valid for years and a
        # key left on disk could still sign bundles that verify.
        for stale in (old_key, retired_platform_key):
            if stale:
                (self.directory / stale).unlink(missing_ok=True)
        self._issuing_certificates.append(issuing.certificate)
        self._issuing = issuing
        self._platform = platform
        if self._tsa is not None:
            self.issue_tsa_certificate(now)
        return issuing.certificate

    def _store(
        self, key_name: str, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
    ) -> None:
        key_path = self.directory / key_name
        certificate_path = key_path.with_name(key_path.name.replace(".key.pem", ".crt.pem"))
        _write_atomically(key_path, self._file_password.encrypt(key), secret=True)
        _write_atomically(certificate_path, _pem(certificate), secret=False)

    def _write_manifest(self) -> None:
        data = json.dumps(self._manifest, indent=2, ensure_ascii=False).encode("utf-8")
        _write_atomically(self.directory / _MANIFEST, data + b"\n", secret=False)

    # Package-internal: the signing acts in signing.signatures use these keys in place.
    def _seal_key(self, credit_code: str) -> _CertifiedKey | None:
        return self._seals.get(credit_code)

    def _platform_key(self) -> _CertifiedKey:
        return self._platform

    def _tsa_key(self) -> _CertifiedKey | None:
        return self._tsa


def _new_issuing(
    root: _CertifiedKey, org_name: str, generation: int, now: datetime
) -> _CertifiedKey:
    key = _new_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
            # Distinct names per generation keep chain building unambiguous for any tool.
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org_name} Issuing CA G{generation}"),
        ]
    )
    certificate = _build(
        subject=subject,
        public_key=key.public_key(),
        issuer=root,
        signing_key=root.private_key,
        now=now,
        lifetime=ISSUING_LIFETIME,
        ca_path_length=0,
    )
    return _CertifiedKey(certificate, key)


def _new_service_key(
    issuing: _CertifiedKey,
    org_name: str,
    common_name: str,
    now: datetime,
    lifetime: timedelta,
    **extensions: list[x509.ExtensionType],
) -> _CertifiedKey:
    """A key of the platform's own (signing, time-stamping) under the issuing CA."""
    key = _new_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    certificate = _build(
        subject=subject,
        public_key=key.public_key(),
        issuer=issuing,
        signing_key=issuing.private_key,
        now=now,
        lifetime=lifetime,
        ca_path_length=None,
        **extensions,
    )
    return _CertifiedKey(certificate, key)


def _new_platform(
    issuing: _CertifiedKey, org_name: str, generation: int, now: datetime
) -> _CertifiedKey:
    return _new_service_key(
        issuing,
        org_name,
        f"{org_name} Platform Signing G{generation}",
        now,
        PLATFORM_LIFETIME,
        extra=[_utf8_extension(OID_SIGNER_ROLE, SignerRole.PLATFORM.value)],
    )


def _new_tsa(
    issuing: _CertifiedKey, org_name: str, generation: int, now: datetime
) -> _CertifiedKey:
    # RFC 3161 section 2.3: exactly id-kp-timeStamping, marked critical.
    return _new_service_key(
        issuing,
        org_name,
        f"{org_name} TSA G{generation}",
        now,
        TSA_LIFETIME,
        critical_extra=[x509.ExtendedKeyUsage([OID_TIME_STAMPING])],
    )


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


def create_keystore(
    directory: str | os.PathLike[str], passphrase: bytes | str, now: datetime, org_name: str
) -> PlatformCA:
    """Create a root, issuing CA generation 1 and a platform certificate in ``directory``."""
    if not org_name or len(org_name) > 40:
        raise CertificateIssueError("org_name must be 1-40 characters")
    path = Path(directory)
    if (path / _MANIFEST).exists():
        raise KeystoreExistsError(f"{path} already holds a keystore")
    path.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_bytes(16)
    file_password = _FilePassword(passphrase, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)

    root_key = _new_key()
    root_subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org_name} Root CA"),
        ]
    )
    root_certificate = _build(
        subject=root_subject,
        public_key=root_key.public_key(),
        issuer=None,
        signing_key=root_key,
        now=now,
        lifetime=ROOT_LIFETIME,
        ca_path_length=1,
    )
    root = _CertifiedKey(root_certificate, root_key)
    issuing = _new_issuing(root, org_name, 1, now)
    platform = _new_platform(issuing, org_name, 1, now)
    tsa = _new_tsa(issuing, org_name, 1, now)
    manifest: dict[str, Any] = {
        "format": KEYSTORE_FORMAT,
        "org_name": org_name,
        "kdf": {
            "name": "scrypt",
            "salt": base64.b64encode(salt).decode("ascii"),
            "n": _SCRYPT_N,
            "r": _SCRYPT_R,
            "p": _SCRYPT_P,
        },
        "root": {"certificate": "root.crt.pem", "key": "root.key.pem"},
        "issuing": [
            {"generation": 1, "certificate": "issuing-g1.crt.pem", "key": "issuing-g1.key.pem"}
        ],
        "platform": {"certificate": "platform-g1.crt.pem", "key": "platform-g1.key.pem"},
        "tsa": {"certificate": "tsa-g1.crt.pem", "key": "tsa-g1.key.pem"},
        "seals": {},
    }
    ca = PlatformCA(
        directory=path,
        manifest=manifest,
        file_password=file_password,
        root=root,
        issuing_certificates=[issuing.certificate],
        issuing=issuing,
        platform=platform,
        seals={},
        tsa=tsa,
    )
    ca._store("root.key.pem", root_key, root_certificate)
    ca._store("issuing-g1.key.pem", issuing.private_key, issuing.certificate)
    ca._store("platform-g1.key.pem", platform.private_key, platform.certificate)
    ca._store("tsa-g1.key.pem", tsa.private_key, tsa.certificate)
    # The manifest goes last: its presence is what marks a complete keystore.
    ca._write_manifest()
    return ca


def load_keystore(directory: str | os.PathLike[str], passphrase: bytes | str) -> PlatformCA:
    """Open a keystore made by :func:`create_keystore`, decrypting its current keys."""
    path = Path(directory)
    try:
        manifest = json.loads((path / _MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise KeystoreError(f"{path} holds no keystore ({_MANIFEST} is missing)") from error
    except (OSError, ValueError) as error:
        raise KeystoreError(f"cannot read {path / _MANIFEST}: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != KEYSTORE_FORMAT:
        raise KeystoreError(f"{path / _MANIFEST} is not a {KEYSTORE_FORMAT} manifest")
    try:
        kdf = manifest["kdf"]
        file_password = _FilePassword(
            passphrase, base64.b64decode(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"]
        )

        def certified(entry: dict[str, str]) -> _CertifiedKey:
            certificate = _read_certificate(path / entry["certificate"])
            key_path = path / entry["key"]
            key = file_password.decrypt(key_path.read_bytes(), key_path)
            if key.public_key() != certificate.public_key():
                raise KeystoreError(f"{key_path} does not match {entry['certificate']}")
            return _CertifiedKey(certificate, key)

        # The root key is decrypted first, so a wrong passphrase fails before anything else.
        root = certified(manifest["root"])
        issuing_certificates = [
            _read_certificate(path / entry["certificate"]) for entry in manifest["issuing"]
        ]
        issuing = certified(manifest["issuing"][-1])
        platform = certified(manifest["platform"])
        seals = {code: certified(entry) for code, entry in manifest["seals"].items()}
        tsa = certified(manifest["tsa"]) if manifest.get("tsa") else None
    except KeystoreError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise KeystoreError(f"keystore {path} is damaged: {error!r}") from error
    return PlatformCA(
        directory=path,
        manifest=manifest,
        file_password=file_password,
        root=root,
        issuing_certificates=issuing_certificates,
        issuing=issuing,
        platform=platform,
        seals=seals,
        tsa=tsa,
    )


def _read_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_root_certificate(root: bytes | str | x509.Certificate) -> x509.Certificate:
    """Accept a root as a certificate object, PEM text/bytes or DER bytes."""
    if isinstance(root, x509.Certificate):
        return root
    data = root.encode("ascii") if isinstance(root, str) else bytes(root)
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)
