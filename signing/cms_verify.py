"""Verifying a detached CMS signature made by :func:`signing.cms.sign_detached`.

:func:`verify_detached` checks everything in Python without trusting the embedded data:
the exact DER layout :func:`~signing.cms.sign_detached` produces (bytes the signature does
not cover may not vary, so a signature has exactly one valid encoding; signatures made by
other tools are therefore refused), the algorithms, the messageDigest attribute, the ECDSA
signature over the DER of the signed attributes, the chain signer -> issuing CA -> the
given root, and that every certificate was valid at the signing time (so a contract stays
verifiable after its event certificate has expired). Results are lists of :class:`Check`,
never bare booleans.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signing.canonical import format_utc, utc_seconds
from signing.certificates import load_certificate_der
from signing.checks import Check
from signing.cms import low_s


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


# The fixed parts of the one encoding :func:`_canonical_encoding` accepts.
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
        if low_s(raw_signature) != raw_signature:
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
