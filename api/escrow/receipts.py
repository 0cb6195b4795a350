"""缴款凭证: the receipt a buyer downloads once a payment notice is paid in full. It
restates what the ledger and the bank's notices of arrival say (who was paid, how much, in
figures and in capitals, when, under which bank transaction) in a one-page PDF, typeset in
the contract PDF's CJK font (Settings.pdf_font, checked at start)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import cn2an
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.escrow.models import PaymentNotice, SupervisedAccount
from api.escrow.notices import payments_by_notice, readable_contract
from api.identity.principal import Principal
from signing.pdf_fonts import PdfFont
from signing.pii import mask_account

BEIJING = timezone(timedelta(hours=8))
KIND_LABELS = {"deposit": "定金", "down_payment": "首付款"}


def yuan(fen: int) -> str:
    whole, cents = divmod(fen, 100)
    return f"{whole:,}.{cents:02d} 元"


def capitals(fen: int) -> str:
    whole, cents = divmod(fen, 100)
    return "人民币" + cn2an.an2cn(f"{whole}.{cents:02d}", "rmb")


def beijing(moment: datetime) -> str:
    local = moment.astimezone(BEIJING)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M:%S}"


async def receipt_pdf(
    session: AsyncSession,
    principal: Principal,
    notice_id: uuid.UUID,
    *,
    font: PdfFont,
    now: datetime,
) -> tuple[str, bytes]:
    """The file name and the PDF of a notice's receipt; refused until paid in full."""
    notice = await session.get(PaymentNotice, notice_id)
    if notice is None:
        raise DomainError.not_found("缴款通知")
    contract = await readable_contract(session, principal, notice.contract_id)
    payments = (await payments_by_notice(session, [notice.id]))[notice.id]
    paid = sum(p.amount_fen for p in payments)
    if paid != notice.due_fen:
        raise DomainError(
            "receipt_not_ready", "该缴款通知尚未缴清，缴清后可下载缴款凭证。", paid_fen=paid
        )
    account = await session.get(SupervisedAccount, contract.supervised_account_id)
    assert account is not None
    kind = KIND_LABELS.get(notice.kind.value, notice.kind.value)
    rows = [
        ("网签业务宗号", contract.business_number),
        ("合同编号", contract.contract_number or "—"),
        ("房屋", f"{contract.estate}{contract.building}{contract.room}室"),
        ("款项", kind),
        ("缴款编号", notice.reference),
        ("应缴金额", f"{yuan(notice.due_fen)}（{capitals(notice.due_fen)}）"),
        ("实缴金额", f"{yuan(paid)}（{capitals(paid)}）"),
        ("收款账户", f"{account.account_name} {mask_account(account.account_number)}"),
        ("开户银行", account.bank_name),
        ("缴清时间", beijing(payments[-1].at)),
    ]
    for index, payment in enumerate(payments, start=1):
        rows.append(
            (f"到账 {index}", f"{beijing(payment.at)} {yuan(payment.amount_fen)}"
             f" 银行流水号 {payment.bank_transaction_id or '—'}")
        )  # fmt: skip
    # Typesetting holds the CPU (font subsetting): off the event loop.
    pdf = await asyncio.to_thread(_typeset, rows, font, now)
    return f"缴款凭证-{notice.reference}.pdf", pdf


def _typeset(rows: list[tuple[str, str]], font: PdfFont, now: datetime) -> bytes:
    pdf = FPDF(orientation="P", unit="mm", format=(148, 210))  # A5
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_font("cjk", fname=str(font.path), collection_font_number=font.index)
    # As for contracts (signing.pdf_render): no bounding boxes redrawn from every outline.
    pdf.fonts["cjk"].ttfont.recalcBBoxes = False
    pdf.add_page()
    pdf.set_font("cjk", size=16)
    pdf.cell(0, 12, "资金缴款凭证", align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("cjk", size=10)
    for label, value in rows:
        pdf.multi_cell(0, 7, f"{label}：{value}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.set_font("cjk", size=8)
    pdf.multi_cell(
        0,
        5,
        "本凭证由网签平台根据监管银行的到账通知生成，款项存入预售（交易）资金监管账户，"
        f"受主管部门监管。生成时间：{beijing(now)}。",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    return bytes(pdf.output())
