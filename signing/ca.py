"""The platform certificate authority: create or load it, issue with it, rotate it.

Hierarchy (all ECDSA P-256, SHA-256; the certificate profile is :mod:`signing.certificates`)::

    root CA (20 years, path length 1)
      └─ issuing CA generation N (5 years, path length 0)
           ├─ event certificates (事件证书): one per signing act, 3 years
           ├─ company seal certificates (合同专用章): one per developer company, 3 years
           ├─ the platform signing certificate (receipts, evidence bundles, PDF stamps), 2 years
           └─ the platform time-stamping authority (RFC 3161, EKU timeStamping), 2 years

The CA lives in a keystore directory (layout and passphrase: :mod:`signing.keystore`).

Loading: ``load_keystore(directory, passphrase)`` decrypts every current key once and
keeps them in memory inside a :class:`PlatformCA`; a wrong passphrase raises
:class:`~signing.keystore.KeystorePassphraseError` and nothing else is touched. Another
process that changed the keystore (rotation, a new seal) becomes visible after loading again.

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
"""

from __future__ import annotations

import os
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signing.certificates import (
    EVENT_LIFETIME,
    OID_ORDER_ID,
    OID_SIGNER_ROLE,
    SEAL_LIFETIME,
    CertificateIssueError,
    CertifiedKey,
    Company,
    Signer,
    build_certificate,
    new_issuing,
    new_key,
    new_platform,
    new_root,
    new_tsa,
    utf8_extension,
)
from signing.keystore import KeystoreFiles, new_keystore_files, read_keystore
from signing.signing_context import SignerRole


class PlatformCA:
    """The loaded keystore: root, issuing CA generations, platform and seal keys.

    Obtain one with :func:`create_keystore` or :func:`load_keystore`. Methods that issue
    long-lived certificates or rotate write the keystore directory before returning.
    """

    def __init__(
        self,
        *,
        files: KeystoreFiles,
        root: CertifiedKey,
        issuing_certificates: list[x509.Certificate],
        issuing: CertifiedKey,
        platform: CertifiedKey,
        seals: dict[str, CertifiedKey],
        tsa: CertifiedKey | None = None,
    ) -> None:
        self.directory = files.directory
        self._files = files
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
        return self._files.organization

    @property
    def root_certificate(self) -> x509.Certificate:
        return self._root.certificate

    def root_pem(self) -> bytes:
        return self._root.certificate.public_bytes(serialization.Encoding.PEM)

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
        tsa = new_tsa(self._issuing, self.organization, generation, now)
        self._files.save_tsa(generation, tsa)
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
        return build_certificate(
            subject=subject,
            public_key=public_key,
            issuer=self._issuing,
            signing_key=self._issuing.private_key,
            now=now,
            lifetime=EVENT_LIFETIME,
            ca_path_length=None,
            extra=[
                utf8_extension(OID_SIGNER_ROLE, signer.role.value),
                utf8_extension(OID_ORDER_ID, order_id),
            ],
        )

    def issue_seal_certificate(self, company: Company, now: datetime) -> x509.Certificate:
        """(Re)issue the company's seal key and certificate and store them in the keystore."""
        key = new_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, company.name),
                x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, company.credit_code),
                x509.NameAttribute(NameOID.COMMON_NAME, company.name),
            ]
        )
        certificate = build_certificate(
            subject=subject,
            public_key=key.public_key(),
            issuer=self._issuing,
            signing_key=self._issuing.private_key,
            now=now,
            lifetime=SEAL_LIFETIME,
            ca_path_length=None,
            extra=[utf8_extension(OID_SIGNER_ROLE, SignerRole.SEAL.value)],
        )
        seal = CertifiedKey(certificate, key)
        self._files.save_seal(company.credit_code, seal)
        self._seals[company.credit_code] = seal
        return certificate

    def seal_certificate(self, credit_code: str) -> x509.Certificate | None:
        seal = self._seals.get(credit_code)
        return seal.certificate if seal else None

    def rotate_issuing_ca(self, now: datetime) -> x509.Certificate:
        """Start issuing CA generation N+1 (see the module docstring); returns its certificate."""
        generation = len(self._issuing_certificates) + 1
        issuing = new_issuing(self._root, self.organization, generation, now)
        platform = new_platform(issuing, self.organization, generation, now)
        self._files.save_generation(generation, issuing, platform)
        self._issuing_certificates.append(issuing.certificate)
        self._issuing = issuing
        self._platform = platform
        if self._tsa is not None:
            self.issue_tsa_certificate(now)
        return issuing.certificate

    # Package-internal: the signing acts in signing.signatures use these keys in place.
    def _seal_key(self, credit_code: str) -> CertifiedKey | None:
        return self._seals.get(credit_code)

    def _platform_key(self) -> CertifiedKey:
        return self._platform

    def _tsa_key(self) -> CertifiedKey | None:
        return self._tsa


def create_keystore(
    directory: str | os.PathLike[str], passphrase: bytes | str, now: datetime, org_name: str
) -> PlatformCA:
    """Create a root, issuing CA generation 1 and a platform certificate in ``directory``.

    The keystore's files are written (the manifest last) before this returns.
    """
    if not org_name or len(org_name) > 40:
        raise CertificateIssueError("org_name must be 1-40 characters")
    files = new_keystore_files(directory, passphrase, org_name)
    root = new_root(org_name, now)
    issuing = new_issuing(root, org_name, 1, now)
    platform = new_platform(issuing, org_name, 1, now)
    tsa = new_tsa(issuing, org_name, 1, now)
    files.save_first_generation(root, issuing, platform, tsa)
    return PlatformCA(
        files=files,
        root=root,
        issuing_certificates=[issuing.certificate],
        issuing=issuing,
        platform=platform,
        seals={},
        tsa=tsa,
    )


def load_keystore(directory: str | os.PathLike[str], passphrase: bytes | str) -> PlatformCA:
    """Open a keystore made by :func:`create_keystore`, decrypting its current keys."""
    stored = read_keystore(directory, passphrase)
    return PlatformCA(
        files=stored.files,
        root=stored.root,
        issuing_certificates=stored.issuing_certificates,
        issuing=stored.issuing,
        platform=stored.platform,
        seals=stored.seals,
        tsa=stored.tsa,
    )
