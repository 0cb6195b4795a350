"""Is this ours? A PDF someone uploads, or the QR code printed on a contract, recognised
as one of our contracts (or not), and what anyone may learn of it: which contract, its
status, when it was signed. No names, no ID numbers, no money: less than the public
verification with a password shows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.models import ContractDocument, ContractOrder, OrderStatus
from api.contracts.pdfs import ContractPdfs
from api.contracts.queries import effective_status
from signing import offline_qr
from signing.pdf import verify_pdf


@dataclass(frozen=True)
class Recognised:
    """What a stranger holding the file (or the QR code) learns."""

    ours: bool
    unchanged: bool
    contract_number: str | None = None
    status: OrderStatus | None = None
    signed_at: datetime | None = None
    document_hash: str | None = None
    problems: tuple[str, ...] = ()


def _facts(
    order: ContractOrder, now: datetime, *, unchanged: bool, problems: tuple[str, ...]
) -> Recognised:
    return Recognised(
        ours=True,
        unchanged=unchanged,
        contract_number=order.contract_number,
        status=effective_status(order, now),
        signed_at=order.completed_at,
        document_hash=order.document_hash,
        problems=problems,
    )


async def recognise_pdf(
    session: AsyncSession, pdfs: ContractPdfs, data: bytes, *, now: datetime
) -> Recognised:
    """Byte for byte one of the PDFs we finished, or, failing that, a file whose attached
    contract document and signatures are ours but whose bytes were changed."""
    digest = hashlib.sha256(data).hexdigest()
    order = await session.scalar(
        select(ContractOrder)
        .join(ContractDocument, ContractDocument.order_id == ContractOrder.id)
        .where(ContractDocument.pdf_sha256 == digest, ContractDocument.complete.is_(True))
    )
    if order is not None:
        return _facts(order, now, unchanged=True, problems=())
    ca = await pdfs.keystore.ca(now)
    report = await verify_pdf(data, ca.root_certificate, now=now)
    failed = tuple(check.reason for check in report.checks if not check.ok)
    if report.document is None or not any(item.under_root for item in report.signatures):
        return Recognised(ours=False, unchanged=False, problems=failed)
    order = await session.scalar(
        select(ContractOrder).where(
            ContractOrder.document_hash == report.document.document_hash,
            ContractOrder.contract_number.is_not(None),
        )
    )
    if order is None:
        return Recognised(ours=False, unchanged=False, problems=failed)
    return _facts(order, now, unchanged=False, problems=failed or ("文件与平台保存的版本不一致",))


@dataclass(frozen=True)
class RecognisedQr:
    genuine: bool
    reason: str
    contract_number: str | None = None
    status_at_signing: str | None = None
    status: OrderStatus | None = None
    signed_at: datetime | None = None
    document_hash: str | None = None


async def recognise_qr(
    session: AsyncSession, pdfs: ContractPdfs, text: str, *, now: datetime
) -> RecognisedQr:
    """The QR code's platform signature checked as an offline checker would, then the
    contract it names looked up: same number, same document."""
    ca = await pdfs.keystore.ca(now)
    result = offline_qr.verify_token(
        text, ca.root_certificate, [ca.platform_certificate, *ca.issuing_certificates]
    )
    payload = result.payload
    if not result.ok or payload is None:
        failed = next((c.reason for c in result.checks if not c.ok), "unreadable")
        return RecognisedQr(False, failed)
    order = await session.scalar(
        select(ContractOrder).where(ContractOrder.contract_number == payload.contract_number)
    )
    if order is None or order.document_hash != payload.document_hash:
        return RecognisedQr(False, "the code names no contract of ours with this document")
    return RecognisedQr(
        True,
        "the platform signed this code for this contract",
        contract_number=payload.contract_number,
        status_at_signing=payload.status,
        status=effective_status(order, now),
        signed_at=payload.signed_at,
        document_hash=payload.document_hash,
    )
