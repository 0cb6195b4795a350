"""Signed contract PDFs (PAdES, with pyHanko): one incremental revision per signing act.

How the PDF signatures fit the signing flow, and why "keys are discarded" stays true:

1. Revision 0 is the contract typeset from the frozen canonical document
   (:mod:`signing.pdf_render`), with an empty signature field per party and one for the
   platform's stamp, and the canonical document attached. It is made once, before the
   first signature, and is deterministic for the document.
2. Each buyer's (or seller's) signing act makes one fresh key (:func:`signing.signatures.
   signing_act`). Within that act the key signs twice: the signing context (the CMS of the
   evidence bundle) and a new PDF revision that fills the party's field (PAdES, with the
   same per-signing certificate and a signature time-stamp). Then the key is dropped. The
   PDF with that revision is what the service stores; nothing can sign for that party
   again, and no later revision rewrites the bytes the party signed.
3. The seal act fills the ``seal`` field with the company's seal key (the seal picture,
   the contract number and the time in the box), the platform then fills the ``platform``
   field on the first page (the QR code with the signed offline payload and the contract
   number), and a document time-stamp (RFC 3161, ETSI.RFC3161) covers the whole file.

Every later revision only fills a signature field or adds the document time-stamp, the
changes PDF allows after an approval signature, so every earlier signature still
validates (pyHanko's difference analysis: form filling). A changed byte anywhere breaks
the time-stamp over the whole file, and every signature whose range covers it.

:func:`verify_pdf` checks a PDF against the platform root with pyHanko's validator; the
command line and the API's ``verify-pdf`` use it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import AxisAlignment, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_signer import (
    PdfSignatureMetadata,
    PdfSigner,
    PdfSigningSession,
    PdfTimeStamper,
)
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.pdf_embedded import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.stamp import QRStampStyle, TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.canonical import CanonicalDocument, format_utc, load_canonical_document, utc_seconds
from signing.certificates import chains_to
from signing.checks import Check
from signing.pdf_fonts import PdfFont
from signing.pdf_render import (
    ATTACHMENT,
    PLATFORM_FIELD,  # noqa: F401 - the platform stamp's field, for callers of this module
    RenderedContract,
    render_pages,
    slots,
)
from signing.tsa import off_the_loop, run_sync

# A contract PDF is a few hundred kilobytes; what verify-pdf reads is bounded by its caller.
MAX_VERIFY_BYTES = 8 * 1024 * 1024


class PdfSigningError(ValueError):
    """A PDF revision could not be made (unknown field, unreadable PDF, ...)."""


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def revision_zero(rendered: RenderedContract) -> bytes:
    """fpdf2's pages plus an empty signature field over every box."""
    writer = IncrementalPdfFileWriter(io.BytesIO(rendered.pdf))
    for box in rendered.fields:
        fields.append_signature_field(
            writer, fields.SigFieldSpec(box.name, on_page=box.page, box=box.box)
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def render_contract(document: CanonicalDocument, font: PdfFont, issued_at: datetime) -> bytes:
    """Revision 0 of a contract's PDF (typeset pages, empty fields, document attached)."""
    return revision_zero(render_pages(document, font, issued_at))


@dataclass(frozen=True)
class Appearance:
    """What a signature box shows: a picture and a few lines of ASCII text (contract
    number, time) in a standard PDF font, so that text stays searchable."""

    text: str
    image: Image.Image | None = None
    qr_url: str | None = None


def _style(appearance: Appearance) -> TextStampStyle:
    text_style = TextBoxStyle(font_size=7, leading=9)
    if appearance.qr_url is not None:
        return QRStampStyle(
            stamp_text=appearance.text,
            text_box_style=text_style,
            border_width=0,
            innsep=1,
        )
    background = PdfImage(appearance.image) if appearance.image is not None else None
    return TextStampStyle(
        stamp_text=appearance.text,
        text_box_style=text_style,
        border_width=0,
        background=background,
        background_opacity=1,
        background_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MID,
            y_align=AxisAlignment.ALIGN_MAX,
            margins=Margins(bottom=24),
        ),
        inner_content_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MID, y_align=AxisAlignment.ALIGN_MIN
        ),
    )


class _TimedSigner(PdfSigner):
    """pyHanko's signer with the signing time given, not read from the system clock."""

    def __init__(self, *args: Any, when: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._when = when

    def init_signing_session(
        self, pdf_out: Any, existing_fields_only: bool = False
    ) -> PdfSigningSession:
        session = super().init_signing_session(pdf_out, existing_fields_only)
        session.system_time = self._when
        return session


def _field_names(reader: PdfFileReader) -> set[str]:
    names = set()
    for reference in reader.root["/AcroForm"].get("/Fields", []):
        names.add(str(reference.get_object().get("/T")))
    return names


async def sign_revision(
    pdf: bytes,
    *,
    field_name: str,
    key: ec.EllipticCurvePrivateKey,
    chain: Sequence[x509.Certificate],
    when: datetime,
    appearance: Appearance,
    timestamper: TimeStamper | None,
) -> bytes:
    """``pdf`` plus one incremental revision: field ``field_name`` signed (PAdES B-T when
    a time-stamper is given) with ``key``, whose certificate is ``chain[0]``.

    Called from :mod:`signing.signatures`, which owns the keys; the key is used here
    and not kept."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf))
        known = _field_names(reader)
    except Exception as error:  # pyHanko raises many kinds on a damaged file
        raise PdfSigningError(f"the PDF cannot be read: {error}") from None
    if field_name not in known:
        raise PdfSigningError(f"the PDF has no signature field {field_name!r}")
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = signers.SimpleSigner(
        signing_cert=_asn1(chain[0]),
        signing_key=asn1_keys.PrivateKeyInfo.load(der),
        cert_registry=SimpleCertificateStore.from_certs([_asn1(c) for c in chain[1:]]),
    )
    del der
    meta = PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        use_pades_lta=False,
    )
    params = {"url": appearance.qr_url} if appearance.qr_url is not None else {}

    async def revision(stamper: TimeStamper | None) -> bytes:
        pdf_signer = _TimedSigner(
            meta,
            signer,
            when=utc_seconds(when),
            timestamper=stamper,
            stamp_style=_style(appearance),
        )
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        out = await pdf_signer.async_sign_pdf(
            writer, existing_fields_only=True, appearance_text_params=params
        )
        return bytes(out.getvalue())

    return await off_the_loop(revision, timestamper)


async def add_document_timestamp(pdf: bytes, timestamper: TimeStamper) -> bytes:
    """``pdf`` plus a document time-stamp (RFC 3161) over the whole file."""

    async def stamped(stamper: TimeStamper | None) -> bytes:
        assert stamper is not None
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        out = await PdfTimeStamper(stamper).async_timestamp_pdf(writer, "sha256")
        return bytes(out.getvalue())

    return await off_the_loop(stamped, timestamper)


def attached_document(pdf: bytes) -> CanonicalDocument | None:
    """The canonical contract document attached to a PDF, or None when it has none."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf))
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
        for position in range(0, len(names), 2):
            if str(names[position]) == ATTACHMENT:
                spec = names[position + 1].get_object()
                data = spec["/EF"]["/F"].get_object().data
                return load_canonical_document(data)
    except Exception:  # no attachment, or not ours: either way, no document
        return None
    return None


@dataclass(frozen=True, slots=True)
class PdfSignatureCheck:
    """One signature or document time-stamp of a PDF, as pyHanko judged it."""

    field: str
    kind: str  # "signature" or "timestamp"
    signer: str
    signed_at: datetime | None
    ok: bool
    whole_file: bool
    reason: str
    # Made with a certificate under the root, whether or not the bytes still match.
    under_root: bool = False


@dataclass(frozen=True)
class PdfVerification:
    """A contract PDF checked against the platform root."""

    signatures: tuple[PdfSignatureCheck, ...]
    document: CanonicalDocument | None
    checks: tuple[Check, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


def _stored_length(raw: bytes) -> int:
    """The length of the DER value at the start of ``raw`` (tag, length, content)."""
    if len(raw) < 2:
        return len(raw)
    first = raw[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(raw[2 : 2 + count], "big")


def _padding_clean(signature: EmbeddedPdfSignature) -> bool:
    """The space reserved for the CMS must be zeros after it: those bytes are covered by
    no signature's range, and a DER reader stops before them, so a changed byte there
    would otherwise pass unnoticed."""
    raw = bytes(signature.sig_object["/Contents"])
    end = _stored_length(raw)
    return end <= len(raw) and not any(raw[end:])


def _under_root(signature: EmbeddedPdfSignature, root: x509.Certificate) -> bool:
    """The signing certificate chains to ``root`` through a certificate embedded beside
    it: pyHanko judges trust only for intact signatures, this is the question "whose"."""
    try:
        embedded = [
            x509.load_der_x509_certificate(choice.chosen.dump())
            for choice in signature.signed_data["certificates"]
        ]
        signer = x509.load_der_x509_certificate(signature.signer_cert.dump())
    except Exception:  # an unreadable signature is nobody's
        return False
    return chains_to(signer, embedded, root)


async def _judge(
    signature: EmbeddedPdfSignature, context: ValidationContext, root: x509.Certificate
) -> PdfSignatureCheck:
    name = str(signature.field_name)
    timestamp = signature.sig_object.get("/Type") == "/DocTimeStamp"
    kind = "timestamp" if timestamp else "signature"
    try:
        if timestamp:
            status: Any = await async_validate_pdf_timestamp(signature, context)
            when = status.timestamp
            # A document time-stamp has no bottom line of its own in pyHanko.
            judged = status.intact and status.valid and status.trusted
        else:
            status = await async_validate_pdf_signature(
                signature, signer_validation_context=context, ts_validation_context=context
            )
            when = status.signer_reported_dt
            judged = status.bottom_line
        signer = status.signing_cert.subject.native.get("common_name", "?")
    except Exception as error:  # a damaged signature is a failed one, never a crash
        return PdfSignatureCheck(
            name, kind, "?", None, False, False, f"cannot be validated: {error}"
        )
    return PdfSignatureCheck(
        field=name,
        kind=kind,
        signer=str(signer),
        signed_at=utc_seconds(when) if when is not None else None,
        ok=bool(judged) and _padding_clean(signature),
        whole_file=status.coverage.name == "ENTIRE_FILE",
        reason=status.summary(),
        under_root=_under_root(signature, root),
    )


async def verify_pdf(
    pdf: bytes, root: x509.Certificate, *, now: datetime | None = None
) -> PdfVerification:
    """Every signature and document time-stamp of ``pdf`` checked with pyHanko against
    ``root`` (at ``now``, the current time by default), plus what makes a contract PDF
    ours and whole: the attached canonical document, a signature by each party, and a
    time-stamp covering the entire file. Never raises on a bad file."""
    if len(pdf) > MAX_VERIFY_BYTES:
        return PdfVerification((), None, (Check("size", False, "the file is too large"),))
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        # In the order they were made (pyHanko lists them in the form's field order).
        embedded = sorted(reader.embedded_signatures, key=lambda s: s.signed_revision)
    except Exception as error:  # not a PDF, or one pyHanko cannot read
        return PdfVerification((), None, (Check("pdf", False, f"not a readable PDF: {error}"),))
    context = ValidationContext(
        trust_roots=[_asn1(root)],
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=utc_seconds(now) if now is not None else None,
    )
    judged = tuple([await _judge(signature, context, root) for signature in embedded])
    document = attached_document(pdf)
    return PdfVerification(judged, document, tuple(_contract_checks(judged, document)))


def verify_pdf_sync(
    pdf: bytes, root: x509.Certificate, *, now: datetime | None = None
) -> PdfVerification:
    """:func:`verify_pdf` for synchronous callers (the command line, tests)."""
    return run_sync(verify_pdf(pdf, root, now=now))


def _contract_checks(
    judged: Sequence[PdfSignatureCheck], document: CanonicalDocument | None
) -> list[Check]:
    checks = [
        Check(
            "document",
            document is not None,
            f"the signed contract document is attached (SHA-256 {document.document_hash})"
            if document is not None
            else f"no contract document ({ATTACHMENT}) is attached: not a Wangqian contract",
        )
    ]
    for item in judged:
        checks.append(
            Check(
                f"{item.kind}:{item.field}",
                item.ok,
                f"{item.signer}, {format_utc(item.signed_at) if item.signed_at else '?'}: "
                + ("valid" if item.ok else item.reason),
            )
        )
    last = judged[-1] if judged else None
    sealed = last is not None and last.kind == "timestamp" and last.whole_file
    checks.append(
        Check(
            "timestamp",
            sealed,
            "a document time-stamp covers the whole file"
            if sealed
            else "no document time-stamp covers the whole file (it was changed or not finished)",
        )
    )
    if document is not None:
        wanted = {slot.field for slot in slots(document.terms())}
        signed = {item.field for item in judged if item.kind == "signature"}
        missing = sorted(wanted - signed)
        checks.append(
            Check(
                "parties",
                not missing,
                "every party signed the PDF"
                if not missing
                else f"unsigned fields: {', '.join(missing)}",
            )
        )
    return checks
