"""Bank webhook signatures: ``X-Bank-Signature: t=<unix>,v1=<hex HMAC-SHA256("t.body")>``.

Several ``v1=`` values may be sent and several secrets may be configured at once (key
rotation): any configured secret matching any given signature is enough. Comparison is
constant-time; a timestamp further than the tolerance from our clock is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from api.core.errors import DomainError

HEADER = "X-Bank-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def compute(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={compute(secret, timestamp, body)}"


def verify(
    header: str | None,
    body: bytes,
    secrets: list[str],
    *,
    now_unix: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Return the signed timestamp or raise the matching problem."""
    if not header:
        raise DomainError("bank_signature_missing", "缺少银行签名 (X-Bank-Signature)。")
    timestamp: int | None = None
    given: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            given.append(value.strip().lower())
    if timestamp is None or not given:
        raise DomainError("bank_signature_invalid", "银行签名格式不正确。")
    if not secrets:
        raise DomainError("bank_not_configured", "未配置银行回调密钥。")
    valid = False
    for secret in secrets:
        expected = compute(secret, timestamp, body).encode()
        for candidate in given:
            # Check every pair so timing does not tell which secret or position matched.
            valid |= hmac.compare_digest(expected, candidate.encode())
    if not valid:
        raise DomainError("bank_signature_invalid", "银行签名校验失败。")
    if abs(now_unix - timestamp) > tolerance:
        raise DomainError(
            "bank_signature_stale", "银行签名已过期，请重新签名后发送。", tolerance=tolerance
        )
    return timestamp


# ------------------------------------------------------------------ certificate signatures

CERT_HEADER = "X-Bank-Signature-Cert"


def verify_certificate(
    header: str,
    body: bytes,
    certificate_pem: str,
    *,
    now_unix: float,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """A webhook signed with the bank's private key instead of a shared secret:
    ``X-Bank-Signature-Cert: t=<unix>,sig=<base64 signature of "t.body">``, RSA (PKCS#1
    v1.5) or ECDSA with SHA-256, checked against the bank's certificate(s) in
    ``WANGQIAN_BANK_WEBHOOK_CERTIFICATE`` (PEM; two while the bank rolls its key over).
    Returns the signed timestamp or raises the matching problem."""
    parts = dict(part.strip().partition("=")[::2] for part in header.split(","))
    stamp = parts.get("t", "")
    try:
        signature = base64.b64decode(parts.get("sig", ""), validate=True)
    except ValueError:
        signature = b""
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not signature:
        raise DomainError("bank_signature_invalid", "银行证书签名格式不正确。")
    message = stamp.encode() + b"." + body
    valid = False
    for certificate in x509.load_pem_x509_certificates(certificate_pem.encode()):
        key = certificate.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            else:
                continue
        except InvalidSignature:
            continue
        valid = True
    if not valid:
        raise DomainError("bank_signature_invalid", "银行证书签名校验失败。")
    if abs(now_unix - int(stamp)) > tolerance:
        raise DomainError(
            "bank_signature_stale", "银行签名已过期，请重新签名后发送。", tolerance=tolerance
        )
    return int(stamp)
