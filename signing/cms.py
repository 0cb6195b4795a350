"""Detached CMS (PKCS#7) signatures over signing contexts, and their verification.

A *signing context* records what one signing act was about: the document hash, the order,
the party's role, the signer's keyed ID hash, the signing time, the one-time-code challenge
that authorized it, and the client's IP address and user agent. Its RFC 8785 bytes are the
detached content of a CMS SignedData (RFC 5652) with the signed attributes content-type,
message-digest (SHA-256) and signing-time, signed with ECDSA P-256, embedding the signer's
certificate and the issuing CA certificate. Such a signature verifies with stock tools::

    openssl cms -verify -binary -inform DER -in sig.der -content ctx.json \
        -CAfile root.pem -purpose any

(add ``-attime <unix time>`` once the short-lived signer certificate has expired).

The SignedData is assembled with asn1crypto rather than cryptography's
``PKCS7SignatureBuilder`` because that builder stamps signing-time from the system clock,
while this library is deterministic given ``now``; ECDSA nonces are RFC 6979 deterministic
where the OpenSSL build supports it.

:func:`verify_detached` checks everything in Python without trusting the embedded data:
the exact DER layout :func:`sign_detached` produces (bytes the signature does not cover may
not vary, so a signature has exactly one valid encoding; signatures made by other tools
are therefore refused), the algorithms, the messageDigest attribute, the ECDSA signature
over the DER of the signed attributes, the chain signer -> issuing CA -> the given root,
and that every certificate was valid at the signing time (so a contract stays verifiable
after its event certificate has expired). Results are lists of :class:`Check`,
never bare booleans.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from asn1crypto import algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import tsp as _tsp  # noqa: F401 - see below
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from signing.canonical import canonical_json, format_utc, parse_utc, utc_seconds

CONTEXT_FORMAT = "wangqian.signing-context/v1"

_HEX64 = re.compile(r"[0-9a-f]{64}")
# A keyed hash is long hex; an 18-character ID number can never pass for one.
_KEYED_HASH = re.compile(r"[0-9a-f]{32,128}")


class SignerRole(StrEnum):
    """Who signs: 买受人 buyer, 出卖人 seller, 合同章 company seal, or the platform itself."""

    BUYER = "buyer"
    SELLER = "seller"
    SEAL = "seal"
    PLATFORM = "platform"


PARTY_ROLES = frozenset({SignerRole.BUYER, SignerRole.SELLER, SignerRole.SEAL})

_CONTEXT_FIELDS = frozenset(
    {
        "format",
        "document_hash",
        "order_id",
        "role",
        "signer_id_hash",
        "signing_time",
        "challenge_id",
        "client_ip",
        "user_agent",
    }
)


@dataclass(frozen=True, slots=True)
class Check:
    """One verification step: what was checked, whether it held, and why in plain words."""

    name: str
    ok: bool
    reason: str

    def prefixed(self, prefix: str, label: str = "") -> Check:
        reason = f"{label}: {self.reason}" if label else self.reason
        return Check(f"{prefix}.{self.name}", self.ok, reason)


@dataclass(frozen=True, slots=True)
class SigningContext:
    """What one signing act was about; its canonical JSON is the CMS content."""

    document_hash: str
    order_id: str
    role: SignerRole
    signer_id_hash: str
    signing_time: datetime
    challenge_id: str
    client_ip: str
    user_agent: str

    def __post_init__(self) -> None:
        if not isinstance(self.document_hash, str) or not _HEX64.fullmatch(self.document_hash):
            raise ValueError("document_hash must be 64 lowercase hex characters (SHA-256)")
        if not isinstance(self.order_id, str) or not self.order_id:
            raise ValueError("order_id must be a non-empty string")
        role = SignerRole(self.role)
        if role not in PARTY_ROLES:
            raise ValueError(f"role must be one of buyer, seller, seal; got {role.value!r}")
        object.__setattr__(self, "role", role)
        if not isinstance(self.signer_id_hash, str) or not _KEYED_HASH.fullmatch(
            self.signer_id_hash
        ):
            raise ValueError(
                "signer_id_hash must be a keyed hash in lowercase hex (32-128 characters), "
                "never the ID number itself"
            )
        object.__setattr__(self, "signing_time", utc_seconds(self.signing_time))
        if not isinstance(self.challenge_id, str) or not self.challenge_id:
            raise ValueError("challenge_id must be a non-empty string")
        if not isinstance(self.client_ip, str):
            raise ValueError("client_ip must be a string")
        ipaddress.ip_address(self.client_ip)  # raises ValueError naming the bad address
        if not isinstance(self.user_agent, str):
            raise ValueError("user_agent must be a string")
        # Fail here, not at signing or verification time, on text JSON cannot carry
        # (lone surrogates from a broken client).
        self.canonical_bytes()

    def to_dict(self) -> dict[str, str]:
        return {
            "format": CONTEXT_FORMAT,
            "document_hash": self.document_hash,
            "order_id": self.order_id,
            "role": self.role.value,
            "signer_id_hash": self.signer_id_hash,
            "signing_time": format_utc(self.signing_time),
            "challenge_id": self.challenge_id,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SigningContext:
        """Strict inverse of :meth:`to_dict`: unknown or missing fields are refused."""
        if not isinstance(data, Mapping) or set(data) != _CONTEXT_FIELDS:
            got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"signing context fields must be {sorted(_CONTEXT_FIELDS)}; got {got}")
        if data["format"] != CONTEXT_FORMAT:
            raise ValueError(f"unknown signing context format {data['format']!r}")
        if not isinstance(data["signing_time"], str):
            raise ValueError("signing_time must be a string")
        context = cls(
            document_hash=data["document_hash"],
            order_id=data["order_id"],
            role=SignerRole(data["role"]),
            signer_id_hash=data["signer_id_hash"],
            signing_time=parse_utc(data["signing_time"]),
            challenge_id=data["challenge_id"],
            client_ip=data["client_ip"],
            user_agent=data["user_agent"],
        )
        if context.to_dict() != dict(data):
            raise ValueError("signing context is not in its canonical form")
        return context


_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _low_s(signature: bytes) -> bytes:
    """(r, s) and (r, n - s) both verify; we only ever write the one with s <= n/2, and
    refuse the other, so a signature cannot be re-spelled without the key."""
    r, s = decode_dss_signature(signature)
    if s > _P256_ORDER // 2:
        return encode_dss_signature(r, _P256_ORDER - s)
    return signature


def _ecdsa() -> ec.ECDSA:
    # RFC 6979 nonces make signatures reproducible and immune to a weak RNG at signing time.
    try:
        return ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    except Exception:  # older OpenSSL builds: fall back to random nonces
        return ec.ECDSA(hashes.SHA256())


def _to_asn1_certificate(certificate: x509.Certificate) -> asn1_cms.CertificateChoices:
    der = certificate.public_bytes(serialization.Encoding.DER)
    return asn1_cms.CertificateChoices.load(der)


def _signing_time_value(moment: datetime) -> asn1_cms.Time:
    # RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime otherwise.
    if 1950 <= moment.year <= 2049:
        return asn1_cms.Time({"utc_time": moment})
    return asn1_cms.Time({"generalized_time": moment})


def sign_detached(
    content: bytes,
    certificate: x509.Certificate,
    private_key: ec.EllipticCurvePrivateKey,
    issuer_certificates: Sequence[x509.Certificate],
    signing_time: datetime,
) -> bytes:
    """DER ContentInfo(SignedData) over ``content`` (detached), signed by ``private_key``.

    ``issuer_certificates`` are embedded after the signer certificate so that a verifier
    holding only the root can build the chain.
    """
    moment = utc_seconds(signing_time)
    signed_attrs = asn1_cms.CMSAttributes(
        [
            asn1_cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            asn1_cms.CMSAttribute(
                {"type": "signing_time", "values": [_signing_time_value(moment)]}
            ),
            asn1_cms.CMSAttribute(
                {"type": "message_digest", "values": [hashlib.sha256(content).digest()]}
            ),
        ]
    )
    # The signature covers the attributes encoded as a universal SET OF (RFC 5652 §5.4);
    # asn1crypto sorts SET OF members on dump, which is the DER order OpenSSL re-encodes to.
    signature = _low_s(private_key.sign(signed_attrs.dump(), _ecdsa()))
    signer_info = asn1_cms.SignerInfo(
        {
            "version": "v1",
            "sid": asn1_cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": asn1_cms.IssuerAndSerialNumber(
                        {
                            "issuer": _to_asn1_certificate(certificate).chosen.issuer,
                            "serial_number": certificate.serial_number,
                        }
                    )
                }
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        }
    )
    signed_data = asn1_cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "data"},
            "certificates": [_to_asn1_certificate(c) for c in (certificate, *issuer_certificates)],
            "signer_infos": [signer_info],
        }
    )
    return asn1_cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


@dataclass(frozen=True, slots=True)
class CmsVerification:
    """The outcome of verifying one detached CMS signature."""

    checks: tuple[Check, ...]
    signer_certificate: x509.Certificate | None = None
    embedded_certificates: tuple[x509.Certificate, ...] = field(default=())
    signing_time: datetime | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)


class _MalformedCmsError(ValueError):
    pass


def _describe(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    name = str(names[0].value) if names else certificate.subject.rfc4514_string()
    return f"'{name}' (serial {certificate.serial_number:x})"


def _parse(signature_der: bytes) -> asn1_cms.SignedData:
    try:
        info = asn1_cms.ContentInfo.load(signature_der, strict=True)
        if info["content_type"].native != "signed_data":
            raise _MalformedCmsError("not a SignedData")
        signed_data = info["content"]
        if signed_data["version"].native != "v1":
            raise _MalformedCmsError(
                f"unexpected SignedData version {signed_data['version'].native}"
            )
        digests = [d["algorithm"].native for d in signed_data["digest_algorithms"]]
        if digests != ["sha256"]:
            raise _MalformedCmsError(f"digest algorithms must be exactly sha256, got {digests}")
        encap = signed_data["encap_content_info"]
        if encap["content_type"].native != "data":
            raise _MalformedCmsError("encapsulated content type is not id-data")
        if encap["content"].native is not None:
            raise _MalformedCmsError("content is embedded; a detached signature was expected")
        if not isinstance(signed_data["crls"], asn1_core.Void):
            raise _MalformedCmsError("unexpected CRLs")
        if len(signed_data["signer_infos"]) != 1:
            raise _MalformedCmsError("exactly one signer expected")
        signer_info = signed_data["signer_infos"][0]
        if signer_info["version"].native != "v1":
            raise _MalformedCmsError("signer info version must be v1 (issuer and serial number)")
        if signer_info["sid"].name != "issuer_and_serial_number":
            raise _MalformedCmsError("signer must be identified by issuer and serial number")
        if signer_info["digest_algorithm"]["algorithm"].native != "sha256":
            raise _MalformedCmsError("signer digest algorithm is not sha256")
        if signer_info["signature_algorithm"]["algorithm"].native != "sha256_ecdsa":
            raise _MalformedCmsError("signature algorithm is not ecdsa-with-SHA256")
        if not isinstance(signer_info["unsigned_attrs"], asn1_core.Void):
            raise _MalformedCmsError("unexpected unsigned attributes")
        if isinstance(signer_info["signed_attrs"], asn1_core.Void):
            raise _MalformedCmsError("signed attributes are missing")
        return signed_data
    except _MalformedCmsError:
        raise
    except Exception as error:  # asn1crypto raises a zoo of types on malformed input
        raise _MalformedCmsError(f"cannot parse: {error}") from error


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


# asn1crypto builds a name table of content types the first time one is named, and its
# tsp module adds "tst_info" (RFC 3161 tokens, which pyHanko names) only when imported:
# importing it above, before the first name below, keeps that name known everywhere.
_SHA256_ALGORITHM = algos.DigestAlgorithm({"algorithm": "sha256"}).dump()
_ECDSA_SHA256_ALGORITHM = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}).dump()
_ID_DATA = asn1_cms.ContentType("data").dump()
_ID_SIGNED_DATA = asn1_cms.ContentType("signed_data").dump()
_VERSION_1 = asn1_core.Integer(1).dump()


def _canonical_encoding(
    signed_data: asn1_cms.SignedData, certificates_der: Sequence[bytes], signer_issuer: bytes
) -> bytes:
    """The one DER encoding of what ``signed_data`` says, the shape :func:`sign_detached` makes.

    Bytes outside the signed attributes are not covered by the signature, so any other
    encoding of the same values is refused as a change. Certificates are already strict DER
    (cryptography parses nothing else) and the signed attributes' contents are what the
    signature covers, so they are reused as they are; every other byte is rebuilt here.
    """
    signer_info = signed_data["signer_infos"][0]
    serial = signer_info["sid"].chosen["serial_number"].native
    sid = _der(0x30, signer_issuer + asn1_core.Integer(serial).dump(force=True))
    signer = _der(
        0x30,
        _VERSION_1
        + sid
        + _SHA256_ALGORITHM
        + _der(0xA0, signer_info["signed_attrs"].contents)
        + _ECDSA_SHA256_ALGORITHM
        + _der(0x04, signer_info["signature"].native),
    )
    body = _der(
        0x30,
        _VERSION_1
        + _der(0x31, _SHA256_ALGORITHM)
        + _der(0x30, _ID_DATA)
        + _der(0xA0, b"".join(sorted(certificates_der)))
        + _der(0x31, signer),
    )
    return _der(0x30, _ID_SIGNED_DATA + _der(0xA0, body))


def _signed_attributes(signer_info: asn1_cms.SignerInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for attribute in signer_info["signed_attrs"]:
        name = attribute["type"].native
        if name in found:
            raise _MalformedCmsError(f"signed attribute {name} appears twice")
        values = attribute["values"]
        if len(values) != 1:
            raise _MalformedCmsError(f"signed attribute {name} must have exactly one value")
        found[name] = values[0].native
    for required in ("content_type", "message_digest", "signing_time"):
        if required not in found:
            raise _MalformedCmsError(f"signed attribute {required} is missing")
    if found["content_type"] != "data":
        raise _MalformedCmsError("signed content-type attribute is not id-data")
    if not isinstance(found["signing_time"], datetime):
        raise _MalformedCmsError("signing-time attribute is not a time")
    return found


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


def _valid_at(certificate: x509.Certificate, moment: datetime) -> bool:
    return certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    except Exception:  # absent or malformed: not a CA we can rely on
        return False
    return constraints.value.ca and usage.value.key_cert_sign


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except Exception:  # wrong name, bad signature, unsupported key: not issued by it
        return False
    return True


def verify_detached(
    signature_der: bytes, content: bytes, root: x509.Certificate
) -> CmsVerification:
    """Verify a detached CMS signature over ``content`` against the trust anchor ``root``.

    Never raises on bad input: every failure becomes a failed :class:`Check`.
    """
    try:
        signed_data = _parse(signature_der)
        signer_info = signed_data["signer_infos"][0]
        attributes = _signed_attributes(signer_info)
        choices = [choice.chosen for choice in signed_data["certificates"]]
        certificates_der = [choice.dump() for choice in choices]
        embedded = tuple(load_certificate_der(der) for der in certificates_der)
        sid = signer_info["sid"].chosen
        position = next(
            (
                index
                for index, choice in enumerate(choices)
                if choice.issuer.dump() == sid["issuer"].dump()
                and embedded[index].serial_number == sid["serial_number"].native
            ),
            None,
        )
        if position is not None:
            canonical = _canonical_encoding(
                signed_data, certificates_der, choices[position].issuer.dump()
            )
            if canonical != bytes(signature_der):
                raise _MalformedCmsError("not in the canonical DER form")
    except Exception as error:
        return CmsVerification((Check("structure", False, f"malformed CMS signature: {error}"),))
    checks = [Check("structure", True, "well-formed detached CMS SignedData (DER)")]
    signing_time = utc_seconds(attributes["signing_time"])

    expected_digest = hashlib.sha256(content).digest()
    if attributes["message_digest"] == expected_digest:
        checks.append(Check("message_digest", True, "messageDigest matches the content"))
    else:
        checks.append(
            Check(
                "message_digest",
                False,
                "messageDigest attribute does not match the SHA-256 of the signed content "
                "(the content was changed after signing)",
            )
        )

    if position is None:
        checks.append(
            Check("signer_certificate", False, "the signer's certificate is not embedded")
        )
        return CmsVerification(tuple(checks), None, embedded, signing_time)
    signer = embedded[position]
    checks.append(Check("signer_certificate", True, f"signed by {_describe(signer)}"))

    attrs_der = signer_info["signed_attrs"].untag().dump()
    try:
        public_key = signer.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise TypeError("signer key is not an EC key")
        raw_signature = signer_info["signature"].native
        if _low_s(raw_signature) != raw_signature:
            raise ValueError("high-s form: a re-spelled twin of a signature, not one we made")
        public_key.verify(raw_signature, attrs_der, ec.ECDSA(hashes.SHA256()))
        checks.append(Check("signature", True, "ECDSA signature over the signed attributes holds"))
    except Exception as error:  # InvalidSignature, unsupported curve or key type, ...
        detail = str(error) or "does not verify with the signer certificate's key"
        checks.append(
            Check("signature", False, f"ECDSA signature over the signed attributes: {detail}")
        )

    checks.extend(_chain_checks(signer, embedded, root, signing_time))
    return CmsVerification(tuple(checks), signer, embedded, signing_time)


def _chain_checks(
    signer: x509.Certificate,
    embedded: Sequence[x509.Certificate],
    root: x509.Certificate,
    signing_time: datetime,
) -> list[Check]:
    checks: list[Check] = []
    try:
        usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
        constraints = signer.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage_ok = (usage.digital_signature or usage.content_commitment) and not constraints.ca
    except (x509.ExtensionNotFound, ValueError):
        usage_ok = False
    checks.append(
        Check(
            "key_usage",
            usage_ok,
            "signer certificate is an end-entity signing certificate"
            if usage_ok
            else f"certificate {_describe(signer)} is not an end-entity signing certificate",
        )
    )

    issuer = next(
        (c for c in embedded if c is not signer and _is_ca(c) and _issued_by(signer, c)), None
    )
    if issuer is None:
        checks.append(
            Check(
                "chain",
                False,
                f"no embedded CA certificate issued the signer certificate {_describe(signer)}",
            )
        )
        return checks
    if not _issued_by(issuer, root):
        checks.append(
            Check(
                "chain",
                False,
                f"foreign certificate: issuing CA {_describe(issuer)} was not issued by "
                f"the trusted root {_describe(root)}",
            )
        )
        return checks
    checks.append(
        Check("chain", True, f"{_describe(signer)} <- {_describe(issuer)} <- {_describe(root)}")
    )

    for label, certificate in (("signer", signer), ("issuing CA", issuer), ("root", root)):
        if not _valid_at(certificate, signing_time):
            checks.append(
                Check(
                    "validity",
                    False,
                    f"{label} certificate {_describe(certificate)} was not valid at the signing "
                    f"time {format_utc(signing_time)} (valid "
                    f"{format_utc(certificate.not_valid_before_utc)} to "
                    f"{format_utc(certificate.not_valid_after_utc)}): expired or not yet valid",
                )
            )
            return checks
    checks.append(
        Check(
            "validity",
            True,
            f"all certificates were valid at the signing time {format_utc(signing_time)}",
        )
    )
    return checks
