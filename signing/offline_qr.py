"""The QR code printed on a signed contract: a verification link that also carries a
signed compact payload, so that a checker without a network can tell a genuine
contract from a forged page.

QR text::

    <public base>/miniapp/#/qr/<token>
    token = base64url(payload) "." base64url(signature)

``payload`` is the RFC 8785 JSON of ``{"v": 1, "n": contract number, "h": document hash
(SHA-256, base64url), "s": status at signing, "t": signing time (UTC), "k": key id}``;
``signature`` is the platform's ECDSA P-256 signature over the payload bytes, as the
64-byte ``r || s`` of JWS ES256 (half the size of DER). About 250 characters: a QR code
of version 12 or so, easy to print at 3 cm. Opened on a phone, the link shows the
contract's public verification (the fragment never reaches a server log).

The key id ``k`` is the first 8 bytes of the SHA-256 of the platform signing certificate,
as in the EU digital COVID certificates: a QR code has no room for certificates, so an
offline checker holds the platform root and the platform's published certificates
(``GET /api/v1/public/certificates``; each checked against the root here) and picks the
one the payload names.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from signing.ca import PlatformCA
from signing.canonical import canonical_json, format_utc, parse_utc, utc_seconds
from signing.certificates import certificate_role, chains_to
from signing.checks import Check
from signing.signing_context import SignerRole

QR_PATH = "/miniapp/#/qr/"
PAYLOAD_VERSION = 1
# A token is about 250 characters; anything much longer is not one of ours.
MAX_TOKEN_CHARS = 600
_FIELDS = frozenset({"v", "n", "h", "s", "t", "k"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    data = base64.urlsafe_b64decode(padded.encode("ascii"))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def key_id(certificate: x509.Certificate) -> str:
    """The key id of a platform certificate: base64url of 8 bytes of its SHA-256."""
    return _b64(hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()[:8])


@dataclass(frozen=True, slots=True)
class QrPayload:
    """What the QR code vouches for."""

    contract_number: str
    document_hash: str  # lowercase hex
    status: str
    signed_at: datetime

    def to_json(self, kid: str) -> bytes:
        return canonical_json(
            {
                "v": PAYLOAD_VERSION,
                "n": self.contract_number,
                "h": _b64(bytes.fromhex(self.document_hash)),
                "s": self.status,
                "t": format_utc(self.signed_at),
                "k": kid,
            }
        )


def make_token(ca: PlatformCA, payload: QrPayload) -> str:
    """The signed token for ``payload``, with the platform signing key."""
    platform = ca._platform_key()
    data = payload.to_json(key_id(platform.certificate))
    der = platform.private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{_b64(data)}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def qr_text(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}{QR_PATH}{token}"


def token_of(text: str) -> str:
    """The token in a scanned QR text (the link), or the text itself when it is a token."""
    text = text.strip()
    return text.split(QR_PATH, 1)[1] if QR_PATH in text else text


@dataclass(frozen=True, slots=True)
class QrVerification:
    checks: tuple[Check, ...]
    payload: QrPayload | None = None
    certificate: x509.Certificate | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


def _decode(token: str) -> tuple[bytes, bytes, dict[str, object], QrPayload]:
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise ValueError("not a Wangqian contract QR token")
    head, tail = token.split(".")
    data, signature = _unb64(head), _unb64(tail)
    fields = json.loads(data)
    if not isinstance(fields, dict) or set(fields) != _FIELDS or fields["v"] != PAYLOAD_VERSION:
        raise ValueError("the payload does not have the expected fields")
    if canonical_json(fields) != data:
        raise ValueError("the payload is not in canonical form")
    if len(signature) != 64:
        raise ValueError("the signature is not 64 bytes")
    digest = _unb64(str(fields["h"]))
    if len(digest) != 32:
        raise ValueError("the document hash is not a SHA-256")
    payload = QrPayload(
        str(fields["n"]), digest.hex(), str(fields["s"]), parse_utc(str(fields["t"]))
    )
    return data, signature, fields, payload


def verify_token(
    text: str,
    root: x509.Certificate,
    certificates: Sequence[x509.Certificate],
    *,
    document_hash: str | None = None,
) -> QrVerification:
    """Check a QR text (or its token) offline against ``root`` and the platform's
    published ``certificates``; with ``document_hash``, also that the code is for that
    document (a genuine code copied onto another contract is refused). Never raises."""
    try:
        data, signature, fields, payload = _decode(token_of(text))
    except Exception as error:  # garbage in a QR code is a failed check
        return QrVerification((Check("token", False, f"unreadable QR payload: {error}"),))
    checks = [Check("token", True, f"contract {payload.contract_number}, signed payload")]
    if document_hash is not None:
        same = document_hash == payload.document_hash
        checks.append(
            Check(
                "document",
                same,
                "the code is for this document"
                if same
                else f"the code is for another document ({payload.document_hash})",
            )
        )
    signer = next((c for c in certificates if key_id(c) == fields["k"]), None)
    if signer is None:
        checks.append(Check("key", False, "no published platform certificate has this key id"))
        return QrVerification(tuple(checks), payload)
    trusted = chains_to(signer, certificates, root) and certificate_role(signer) is (
        SignerRole.PLATFORM
    )
    checks.append(
        Check(
            "certificate",
            trusted,
            "the platform signing certificate chains to the root"
            if trusted
            else "the named certificate is not a platform certificate under this root",
        )
    )
    moment = utc_seconds(payload.signed_at)
    valid = signer.not_valid_before_utc <= moment <= signer.not_valid_after_utc
    checks.append(
        Check(
            "validity",
            valid,
            f"the certificate was valid at {format_utc(moment)}"
            if valid
            else "the certificate was not valid at the signing time",
        )
    )
    public_key = signer.public_key()
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise InvalidSignature("not an EC key")
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        checks.append(Check("signature", True, "the platform signature over the payload holds"))
    except InvalidSignature:
        checks.append(Check("signature", False, "the signature does not match the payload"))
    return QrVerification(tuple(checks), payload, signer)
