"""Signing acts and signature records: who signed which document, and the proof.

Three kinds of signature, all detached CMS over canonical bytes (see :mod:`signing.cms`):

- :func:`signing_act` / :func:`sign_once` — a buyer or seller signs: a fresh P-256 key is
  made, an event certificate (事件证书) is issued for it, the signing context is signed
  (and, inside the same act, the party's revision of the contract PDF, see
  :mod:`signing.pdf`), and the key is dropped when the act ends. Only signatures and
  certificates come out, so no caller can keep, log or persist the private key.
- :func:`seal_sign` / :func:`seal_pdf` — the developer company's seal (合同章) signs with
  the long-lived seal key held in the keystore, after the seal keeper's one-time code was
  checked: the signing context, and the seal's revision of the contract PDF.
- :func:`platform_sign` / :func:`platform_pdf` — the platform signs receipts, evidence
  bundles and the verification stamp of a contract PDF.

:func:`verify_signature` checks a party signature beyond the CMS itself: the certificate's
role and order extensions and its keyed ID hash must match the signing context, and the
CMS signing-time must be the context's signing time.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.sign.timestamps.api import TimeStamper

from signing import pdf as pdf_signing
from signing.ca import PlatformCA
from signing.canonical import format_utc, utc_seconds
from signing.certificates import (
    Signer,
    certificate_credit_code,
    certificate_order_id,
    certificate_role,
    certificate_signer_id_hash,
    load_certificate_pem,
)
from signing.checks import Check
from signing.cms import sign_detached
from signing.cms_verify import CmsVerification, verify_detached
from signing.signing_context import SignerRole, SigningContext


class SigningError(ValueError):
    """A signing act was refused: inconsistent context, missing or expired key."""


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _load_chain(pems: Any) -> tuple[x509.Certificate, ...]:
    if not isinstance(pems, list) or not pems or not all(isinstance(p, str) for p in pems):
        raise ValueError("certificate_chain must be a non-empty list of PEM strings")
    chain = tuple(load_certificate_pem(p) for p in pems)
    if [_pem(c) for c in chain] != pems:
        raise ValueError("certificate_chain is not in its canonical PEM form")
    return chain


def _b64decode(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("signature must be a base64 string")
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("signature is not in canonical base64")
    return raw


@dataclass(frozen=True, slots=True)
class SignatureRecord:
    """A party's signature: context, CMS DER, and the chain (signer certificate first)."""

    context: SigningContext
    signature_der: bytes
    certificate_chain: tuple[x509.Certificate, ...]

    @property
    def role(self) -> SignerRole:
        return self.context.role

    @property
    def signer_certificate(self) -> x509.Certificate:
        return self.certificate_chain[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.context.role.value,
            "context": self.context.to_dict(),
            "signature": base64.b64encode(self.signature_der).decode("ascii"),
            "certificate_chain": [_pem(c) for c in self.certificate_chain],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignatureRecord:
        if not isinstance(data, Mapping) or set(data) != {
            "role",
            "context",
            "signature",
            "certificate_chain",
        }:
            raise ValueError("a signature entry has exactly role, context, signature, chain")
        context = SigningContext.from_dict(data["context"])
        if data["role"] != context.role.value:
            raise ValueError(
                f"entry says role {data['role']!r} but its context says {context.role.value!r}"
            )
        return cls(context, _b64decode(data["signature"]), _load_chain(data["certificate_chain"]))


@dataclass(frozen=True, slots=True)
class PlatformSignature:
    """The platform's signature over some canonical content (a receipt, a bundle)."""

    signature_der: bytes
    certificate_chain: tuple[x509.Certificate, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": base64.b64encode(self.signature_der).decode("ascii"),
            "certificate_chain": [_pem(c) for c in self.certificate_chain],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlatformSignature:
        if not isinstance(data, Mapping) or set(data) != {"signature", "certificate_chain"}:
            raise ValueError("a platform signature has exactly signature and certificate_chain")
        return cls(_b64decode(data["signature"]), _load_chain(data["certificate_chain"]))


def _new_event_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class SigningAct:
    """One buyer's or seller's signing act: its key and certificate, usable only inside
    ``with signing_act(...)``; afterwards the key is gone and every method refuses."""

    def __init__(
        self,
        signer: Signer,
        certificate: x509.Certificate,
        issuing: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
        moment: datetime,
    ) -> None:
        self.signer = signer
        self.chain = (certificate, issuing)
        self._key: ec.EllipticCurvePrivateKey | None = key
        self._moment = moment

    def _live_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            raise SigningError("this signing act is over: its key was discarded")
        return self._key

    def sign_context(self, context: SigningContext) -> SignatureRecord:
        """The evidence signature: detached CMS over the signing context."""
        if context.role != self.signer.role:
            raise SigningError(
                f"context role {context.role} is not the signer's {self.signer.role}"
            )
        if context.signer_id_hash != self.signer.id_hash:
            raise SigningError("context signer_id_hash is not the signer's id_hash")
        if context.signing_time != self._moment:
            raise SigningError(
                f"context signing_time {format_utc(context.signing_time)} is not now "
                f"({format_utc(self._moment)})"
            )
        certificate, issuing = self.chain
        der = sign_detached(
            context.canonical_bytes(), certificate, self._live_key(), [issuing], self._moment
        )
        return SignatureRecord(context, der, self.chain)

    async def sign_pdf(
        self,
        pdf: bytes,
        *,
        field_name: str,
        appearance: pdf_signing.Appearance,
        timestamper: TimeStamper | None,
    ) -> bytes:
        """The party's revision of the contract PDF, with the same key and certificate."""
        return await pdf_signing.sign_revision(
            pdf,
            field_name=field_name,
            key=self._live_key(),
            chain=self.chain,
            when=self._moment,
            appearance=appearance,
            timestamper=timestamper,
        )


@contextmanager
def signing_act(
    ca: PlatformCA, signer: Signer, order_id: str, now: datetime
) -> Iterator[SigningAct]:
    """A fresh key and its event certificate for one act; the key is dropped on exit."""
    moment = utc_seconds(now)
    key = _new_event_key()
    try:
        certificate = ca.issue_event_certificate(key.public_key(), signer, order_id, now)
        act = SigningAct(signer, certificate, ca.issuing_certificate, key, moment)
    finally:
        # The act holds the only reference from here on (and only until it ends), also
        # when an exception's traceback outlives this frame.
        del key
    try:
        yield act
    finally:
        act._key = None


def sign_once(
    ca: PlatformCA, signer: Signer, context: SigningContext, now: datetime
) -> SignatureRecord:
    """One buyer/seller signing act with a key that exists only during this call."""
    if context.role != signer.role:
        raise SigningError(f"context role {context.role} is not the signer's {signer.role}")
    with signing_act(ca, signer, context.order_id, now) as act:
        return act.sign_context(context)


def _seal_key(ca: PlatformCA, credit_code: str, moment: datetime) -> tuple[Any, x509.Certificate]:
    seal = ca._seal_key(credit_code)
    if seal is None:
        raise SigningError(f"no seal certificate for company {credit_code}")
    certificate = seal.certificate
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise SigningError(
            f"the seal certificate of {credit_code} expired on "
            f"{format_utc(certificate.not_valid_after_utc)}; issue a new one"
        )
    return seal, ca.issuer_of(certificate)


def seal_sign(
    ca: PlatformCA, credit_code: str, context: SigningContext, now: datetime
) -> SignatureRecord:
    """The company seal signs ``context`` (role seal) with its keystore key."""
    moment = utc_seconds(now)
    if context.role != SignerRole.SEAL:
        raise SigningError("a seal signature needs a context with role 'seal'")
    if context.signing_time != moment:
        raise SigningError("context signing_time is not now")
    seal, issuing = _seal_key(ca, credit_code, moment)
    certificate = seal.certificate
    der = sign_detached(context.canonical_bytes(), certificate, seal.private_key, [issuing], moment)
    return SignatureRecord(context, der, (certificate, issuing))


async def seal_pdf(
    ca: PlatformCA,
    credit_code: str,
    pdf: bytes,
    now: datetime,
    *,
    appearance: pdf_signing.Appearance,
    timestamper: TimeStamper | None,
) -> bytes:
    """The seal's revision of the contract PDF (field ``seal``), with its keystore key."""
    moment = utc_seconds(now)
    seal, issuing = _seal_key(ca, credit_code, moment)
    return await _kept_key_revision(seal, issuing, "seal", pdf, moment, appearance, timestamper)


async def _kept_key_revision(
    holder: Any,
    issuing: x509.Certificate,
    field_name: str,
    pdf: bytes,
    moment: datetime,
    appearance: pdf_signing.Appearance,
    timestamper: TimeStamper | None,
) -> bytes:
    """A PDF revision signed with a key the keystore keeps (the seal's, the platform's)."""
    return await pdf_signing.sign_revision(
        pdf,
        field_name=field_name,
        key=holder.private_key,
        chain=(holder.certificate, issuing),
        when=moment,
        appearance=appearance,
        timestamper=timestamper,
    )


def _platform_key(ca: PlatformCA, moment: datetime) -> tuple[Any, x509.Certificate]:
    platform = ca._platform_key()
    certificate = platform.certificate
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise SigningError("the platform signing certificate is not valid now; rotate the CA")
    return platform, ca.issuer_of(certificate)


def platform_sign(ca: PlatformCA, content: bytes, now: datetime) -> PlatformSignature:
    """The platform's detached CMS signature over ``content``."""
    moment = utc_seconds(now)
    platform, issuing = _platform_key(ca, moment)
    certificate = platform.certificate
    der = sign_detached(content, certificate, platform.private_key, [issuing], moment)
    return PlatformSignature(der, (certificate, issuing))


async def platform_pdf(
    ca: PlatformCA,
    pdf: bytes,
    now: datetime,
    *,
    appearance: pdf_signing.Appearance,
    timestamper: TimeStamper | None,
) -> bytes:
    """The platform's verification stamp on the contract PDF (field ``platform``)."""
    moment = utc_seconds(now)
    platform, issuing = _platform_key(ca, moment)
    return await _kept_key_revision(
        platform, issuing, pdf_signing.PLATFORM_FIELD, pdf, moment, appearance, timestamper
    )


def _same_chain(result: CmsVerification, chain: Sequence[x509.Certificate]) -> bool:
    """The listed chain holds exactly the embedded certificates, the signer's first (the
    CMS keeps them as a DER SET, sorted): one valid spelling, so nothing can be reordered
    without failing."""

    def encoded(certificates: Sequence[x509.Certificate]) -> list[bytes]:
        return sorted(c.public_bytes(serialization.Encoding.DER) for c in certificates)

    signer_first = (
        result.signer_certificate is not None
        and bool(chain)
        and (chain[0] == result.signer_certificate)
    )
    return signer_first and encoded(result.embedded_certificates) == encoded(chain)


def _with(result: CmsVerification, extra: list[Check]) -> CmsVerification:
    return replace(result, checks=(*result.checks, *extra))


def verify_signature(record: SignatureRecord, root: x509.Certificate) -> CmsVerification:
    """CMS verification of a party signature plus the certificate/context bindings."""
    context = record.context
    result = verify_detached(record.signature_der, context.canonical_bytes(), root)
    certificate = result.signer_certificate
    if certificate is None:
        return result
    extra: list[Check] = []

    same = _same_chain(result, record.certificate_chain)
    extra.append(
        Check(
            "certificate_chain",
            same,
            "the listed certificate chain is the one embedded in the signature"
            if same
            else "the listed certificate chain differs from the one embedded in the signature",
        )
    )

    role = certificate_role(certificate)
    role_ok = role == context.role
    extra.append(
        Check(
            "certificate_role",
            role_ok,
            f"certificate issued for role {context.role.value}"
            if role_ok
            else f"certificate was issued for role {role.value if role else 'none'}, "
            f"the context claims {context.role.value}",
        )
    )
    if context.role == SignerRole.SEAL:
        code = certificate_credit_code(certificate)
        extra.append(
            Check(
                "certificate_subject",
                code is not None,
                f"company seal of credit code {code}"
                if code
                else "seal certificate names no unified social credit code",
            )
        )
    else:
        order_id = certificate_order_id(certificate)
        id_hash = certificate_signer_id_hash(certificate)
        problems = []
        if order_id != context.order_id:
            problems.append(f"certificate is for order {order_id!r}, not {context.order_id!r}")
        if id_hash != context.signer_id_hash:
            problems.append("certificate names a different signer (ID hash) than the context")
        extra.append(
            Check(
                "certificate_subject",
                not problems,
                "; ".join(problems) or "certificate names this signer and this order",
            )
        )

    if result.signing_time is not None:
        time_ok = result.signing_time == context.signing_time
        extra.append(
            Check(
                "signing_time",
                time_ok,
                f"signed at {format_utc(context.signing_time)}"
                if time_ok
                else f"CMS signing-time {format_utc(result.signing_time)} differs from the "
                f"context's {format_utc(context.signing_time)}",
            )
        )
    return _with(result, extra)


def verify_platform_signature(
    signature: PlatformSignature, content: bytes, root: x509.Certificate
) -> CmsVerification:
    """CMS verification of a platform signature, which must come from a platform certificate."""
    result = verify_detached(signature.signature_der, content, root)
    if result.signer_certificate is None:
        return result
    role = certificate_role(result.signer_certificate)
    same = _same_chain(result, signature.certificate_chain)
    return _with(
        result,
        [
            Check(
                "certificate_role",
                role == SignerRole.PLATFORM,
                "signed with the platform signing certificate"
                if role == SignerRole.PLATFORM
                else f"signed with a {role.value if role else 'role-less'} certificate, "
                "not the platform's",
            ),
            Check(
                "certificate_chain",
                same,
                "the listed certificate chain is the one embedded in the signature"
                if same
                else "the listed certificate chain differs from the one embedded in the signature",
            ),
        ],
    )
