"""Detached CMS (PKCS#7) signatures over signing contexts: how they are made.

A signing context's RFC 8785 bytes (:mod:`signing.signing_context`) are the
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

:mod:`signing.cms_verify` verifies these signatures, accepting exactly the DER layout
:func:`sign_detached` produces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import algos
from asn1crypto import cms as asn1_cms
from asn1crypto import tsp as _tsp  # noqa: F401 - see below
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from signing.canonical import utc_seconds

# asn1crypto builds a name table of content types the first time one is named, and its
# tsp module adds "tst_info" (RFC 3161 tokens, which pyHanko names) only when imported:
# importing it above, before any name is used (signing.cms_verify names some as it is
# imported, and it imports this module first), keeps that name known everywhere.

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def low_s(signature: bytes) -> bytes:
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
    signature = low_s(private_key.sign(signed_attrs.dump(), _ecdsa()))
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
