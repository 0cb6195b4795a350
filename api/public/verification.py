"""Public contract verification (合同查询): anyone with a contract's number (or its filing
number) and password learns whether it is genuine and sees its status, its filing, its flat
and its signing times; anyone with the PDF or the QR code printed on it learns whether it
is ours and unchanged."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.pdfs import ContractPdfs
from api.contracts.reads import genuine_contract
from api.contracts.recognition import recognise_pdf, recognise_qr
from api.contracts.wording import room_label
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.core.read_cache import Pin
from api.public.schemas import VerifiedUnit, VerifyAnswer, VerifyPdfAnswer, VerifyQrAnswer
from api.register.queries import format_area
from signing.canonical import format_utc


async def verify_contract(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    number: str,
    password: str,
    pin: Pin | None = None,
) -> VerifyAnswer:
    """Genuine or not; the same answer for an unknown number and a wrong password. ``pin``:
    see ``api.contracts.reads.genuine_contract``."""
    number = number.strip().upper()
    found = await genuine_contract(session, keys, number=number, password=password, pin=pin)
    if found is None:
        return VerifyAnswer(genuine=False, contract_number=number)
    unit = found.terms.unit
    return VerifyAnswer(
        genuine=True,
        contract_number=found.contract_number,
        status=found.status,
        filing_number=found.filing_number,
        filed_at=found.filed_at,
        unit=VerifiedUnit(
            id=found.unit_id,
            project=unit.project,
            building=unit.building,
            room_no=unit.room_no,
            label=unit.project + room_label(unit.building, unit.unit, unit.room_no),
            address=unit.address,
            building_area=format_area(unit.building_area_units),
            use=unit.use,
        ),
        company=found.terms.developer.name if found.terms.developer else None,
        parties=[{"role": role, "name": name} for role, name in found.parties],
        document_hash=found.document_hash,
        signatures=[
            {"role": role, "name": name, "signed_at": format_utc(signed_at)}
            for role, name, signed_at in found.signatures
        ],
        completed_at=found.completed_at,
    )


async def verify_pdf(
    session: AsyncSession, pdfs: ContractPdfs, data: bytes, *, now: datetime
) -> VerifyPdfAnswer:
    """Anyone may ask whether a PDF is one of our contracts and unchanged."""
    if data.lstrip()[:5] != b"%PDF-":
        raise DomainError("pdf_invalid", "上传的文件不是 PDF 文件。")
    found = await recognise_pdf(session, pdfs, data, now=now)
    return VerifyPdfAnswer(**{**asdict(found), "problems": list(found.problems) or None})


async def verify_qr(
    session: AsyncSession, pdfs: ContractPdfs, text: str, *, now: datetime
) -> VerifyQrAnswer:
    """Anyone may ask whether a contract's QR code is one the platform signed for it."""
    return VerifyQrAnswer(**asdict(await recognise_qr(session, pdfs, text, now=now)))
