"""The contract typeset as a PDF: revision 0 of every signed contract PDF.

:func:`render_contract` lays out a canonical document (format v2, which carries the
rendered text, :mod:`signing.canonical`) on A4 pages with fpdf2, in a CJK font embedded as
a subset: the title, every chapter and clause as the signer read them, page numbers and the
document hash in the footer, and a signature page with one box per party. Then pyHanko
adds an empty signature field over each box (and one top right of the first page for the
platform's verification stamp) and the canonical document itself as an attached file
(``contract.json``), so the PDF carries the exact bytes its signatures are about.

The boxes stay empty in this revision: each signing act later fills its own field in an
incremental revision (:mod:`signing.pdf`), so the pages a buyer signed are never rewritten.

The pages are typeset from the font's base face (:mod:`signing.pdf_fonts`: cut once to
what contracts print, in TrueType outlines, which makes fpdf2's per-document subsetting
several times cheaper),
and from the whole face when a contract prints a character the base face lacks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from signing.canonical import CanonicalDocument
from signing.pdf_fonts import PdfFont, base_face
from signing.pii import mask_name

MM = 72 / 25.4  # PDF points per millimetre
PAGE_W, PAGE_H = 210.0, 297.0  # A4, millimetres
MARGIN = 22.0
BODY_SIZE = 10.5  # 五号
LINE = 6.0
# Top right of the first page: where the platform stamps the QR code and contract number.
PLATFORM_BOX = (126.0, 10.0, 64.0, 30.0)  # x, y, width, height in millimetres
PLATFORM_FIELD = "platform"
SEAL_BOX = (44.0, 54.0)  # the seal (42 mm, as real ones) above two lines of text
PERSON_BOX = (72.0, 24.0)
ATTACHMENT = "contract.json"

_ROLE_LABELS = {"buyer": "买受人（签名）", "seller": "出卖人（签名）", "seal": "出卖人（盖章）"}


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Slot:
    """One signature box on the signature page."""

    field: str
    label: str
    name: str
    detail: str
    seal: bool


def field_name(role: str, ordinal: int) -> str:
    """The signature field of a party: ``seal``, or ``buyer-1``, ``seller-2`` (1-based)."""
    return "seal" if role == "seal" else f"{role}-{ordinal}"


def slots(terms: Mapping[str, Any]) -> list[Slot]:
    """The signature boxes the terms' parties call for: the seller's side first (the
    developer's seal or the owners), then the buyers, each in the terms' order."""
    counts: dict[str, int] = {}
    found = []
    for party in terms["parties"]:
        role = party["role"]
        counts[role] = counts.get(role, 0) + 1
        if role == "seal":
            detail = f"统一社会信用代码：{party['credit_code']}"
            name = party["name"]
        else:
            detail = f"证件号码：{party.get('id_number_masked', '')}"
            name = mask_name(party["name"])
        found.append(
            Slot(field_name(role, counts[role]), _ROLE_LABELS[role], name, detail, role == "seal")
        )
    return sorted(found, key=lambda slot: slot.field.startswith("buyer"))


@dataclass(frozen=True, slots=True)
class FieldBox:
    """Where a signature field sits: page index and box in PDF points (origin bottom left)."""

    name: str
    page: int
    box: tuple[int, int, int, int]


def _points(page: int, x: float, y: float, width: float, height: float, name: str) -> FieldBox:
    return FieldBox(
        name,
        page,
        (
            round(x * MM),
            round((PAGE_H - y - height) * MM),
            round((x + width) * MM),
            round((PAGE_H - y) * MM),
        ),
    )


class _Pages(FPDF):
    """A4 pages with the contract's footer: page x of y and the document hash."""

    def __init__(self, footer: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._footer = footer
        self.set_margins(MARGIN, 18, MARGIN)
        self.set_auto_page_break(True, margin=20)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font("cjk", size=7.5)
        self.set_text_color(110)
        self.cell(0, 4, self._footer, align="L")
        self.set_x(MARGIN)
        self.cell(0, 4, f"第 {self.page_no()} 页 共 {{nb}} 页", align="R")
        self.set_text_color(0)


def _text(pdf: _Pages, size: float, text: str, *, align: str = "J", height: float = LINE) -> None:
    pdf.set_font("cjk", size=size)
    pdf.multi_cell(
        0, height, text, align=align, wrapmode=WrapMode.CHAR, new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )


def _title_page(pdf: _Pages, document: CanonicalDocument, text: Mapping[str, Any]) -> None:
    pdf.add_page()
    x, y, width, height = PLATFORM_BOX
    pdf.set_draw_color(200)
    pdf.set_dash_pattern(dash=1, gap=1)
    pdf.rect(x, y, width, height)
    pdf.set_dash_pattern()
    pdf.set_font("cjk", size=7)
    pdf.set_text_color(120)
    pdf.set_xy(x, y + height + 0.5)
    pdf.cell(width, 3.5, "合同编号及核验二维码（签约完成后由平台加盖）", align="C")
    pdf.set_text_color(0)
    pdf.set_y(y + height + 10)
    _text(pdf, 18, text["title"], align="C", height=10)
    pdf.set_text_color(90)
    note = (
        f"模板 {document.template_id} 第 {document.template_version} 版"
        f" · 文件摘要（SHA-256）{document.document_hash}"
    )
    _text(pdf, 7.5, note, align="C", height=4.5)
    pdf.set_text_color(0)
    pdf.ln(4)


def _chapters(pdf: _Pages, chapters: Sequence[Mapping[str, Any]]) -> None:
    for chapter in chapters:
        # A heading is never the last line of a page.
        if pdf.get_y() > PAGE_H - 40:
            pdf.add_page()
        pdf.ln(2.5)
        _text(pdf, 12.5, chapter["heading"], align="C", height=8)
        for clause in chapter["clauses"]:
            _text(pdf, BODY_SIZE, "\u3000\u3000" + clause)
            pdf.ln(1.2)


def _signature_page(pdf: _Pages, title: str, boxes: Sequence[Slot]) -> list[FieldBox]:
    pdf.add_page()
    _text(pdf, 14, "签署页", align="C", height=9)
    _text(pdf, 9, f"（本页无正文，为《{title}》之签署页）", align="C", height=6)
    pdf.ln(4)
    fields = []
    column_width = (PAGE_W - 2 * MARGIN) / 2
    top = pdf.get_y()
    for position, slot in enumerate(boxes):
        column = position % 2
        if column == 0 and position:
            top += 14 + SEAL_BOX[1] + 8
        if top + 14 + SEAL_BOX[1] > PAGE_H - 24:
            pdf.add_page()
            top = pdf.get_y()
        x = MARGIN + column * column_width
        pdf.set_xy(x, top)
        pdf.set_font("cjk", size=10)
        pdf.cell(column_width - 4, 6, f"{slot.label}：{slot.name}")
        pdf.set_xy(x, top + 6)
        pdf.set_font("cjk", size=8)
        pdf.set_text_color(90)
        pdf.cell(column_width - 4, 5, slot.detail)
        pdf.set_text_color(0)
        width, height = SEAL_BOX if slot.seal else PERSON_BOX
        pdf.set_draw_color(200)
        pdf.set_dash_pattern(dash=1, gap=1)
        pdf.rect(x, top + 13, width, height)
        pdf.set_dash_pattern()
        fields.append(_points(pdf.page_no() - 1, x, top + 13, width, height, slot.field))
    pdf.set_y(top + 14 + SEAL_BOX[1] + 10)
    _text(pdf, 9, "签署时间以各方电子签名（数字证书）所载时间为准。", align="L")
    return fields


@dataclass(frozen=True, slots=True)
class RenderedContract:
    """Revision 0 from fpdf2, and the signature fields to add over it."""

    pdf: bytes
    fields: tuple[FieldBox, ...]


def render_pages(
    document: CanonicalDocument, font: PdfFont, issued_at: datetime
) -> RenderedContract:
    """Typeset a v2 canonical document. Deterministic for a document, font and time.

    From the base face when the font has a cache, and again from the whole face when the
    contract prints a character the base face lacks (fpdf2 lists those it met)."""
    text = document.text()
    if text is None:
        raise ValueError("the document carries no contract text (format v1)")
    face = typesetting_face(font)
    if face is not None:
        pdf, fields = _typeset(document, text, face, 0, issued_at)
        # Checked before the output (which subsets: the costly part, wasted on a miss) and
        # after it, since the output draws the last page's footer.
        if not pdf.fonts["cjk"].missing_glyphs:
            data = bytes(pdf.output())
            if not pdf.fonts["cjk"].missing_glyphs:
                return RenderedContract(data, fields)
    pdf, fields = _typeset(document, text, font.path, font.index, issued_at)
    return RenderedContract(bytes(pdf.output()), fields)


def typesetting_face(font: PdfFont) -> Path | None:
    """The base face contracts are typeset from, cut first if it is not on disk yet; None
    when the font has no cache directory or it cannot be written (the whole face then)."""
    if font.cache is None:
        return None
    try:
        return base_face(font, font.cache)
    except OSError as error:  # a data directory it cannot write: slower, not broken
        log.warning("no base face in %s (%s): typesetting from the whole face", font.cache, error)
        return None


def _typeset(
    document: CanonicalDocument,
    text: Mapping[str, Any],
    face: Path,
    index: int,
    issued_at: datetime,
) -> tuple[_Pages, tuple[FieldBox, ...]]:
    pdf = _Pages(f"{text['title']} · 文件摘要 {document.document_hash[:16]}…")
    pdf.add_font("cjk", fname=str(face), collection_font_number=index)
    # fpdf2 opens the face with fontTools' default of recalculating bounding boxes on save:
    # for a CFF face (the whole face, for a rare character) that draws every kept glyph's
    # outline three times (CFF FontBBox, hhea, vhea), about half of the typesetting's CPU.
    # fontTools' own subsetter leaves them off by default (recalc_bounds): the whole face's
    # boxes enclose the subset's, and the PDF's glyph widths come from fpdf2's /W array,
    # not from these tables.
    pdf.fonts["cjk"].ttfont.recalcBBoxes = False
    pdf.set_creation_date(issued_at)
    pdf.set_title(text["title"])
    pdf.set_subject(f"SHA-256 {document.document_hash}")
    pdf.set_creator("Wangqian 网签")
    pdf.set_producer("Wangqian 网签 (fpdf2, pyHanko)")
    pdf.set_lang("zh-CN")
    pdf.embed_file(
        bytes=document.canonical_bytes,
        basename=ATTACHMENT,
        mime_type="application/json",
        modification_date=issued_at,
        desc="签署的规范化合同文件（RFC 8785）",
    )
    _title_page(pdf, document, text)
    _chapters(pdf, text["chapters"])
    fields = _signature_page(pdf, text["title"], slots(document.terms()))
    x, y, width, height = PLATFORM_BOX
    fields.append(_points(0, x, y, width, height, PLATFORM_FIELD))
    return pdf, tuple(fields)
