"""The base face contract PDFs are typeset in (signing.pdf_fonts): cut once and kept on
disk, it covers what contracts print, a character outside it still prints and extracts
(typeset from the whole face), and the PDF embeds a subset either way."""

from __future__ import annotations

import logging
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont

from signing import pdf_fonts
from signing.canonical import CanonicalDocument, canonical_document, sha256_hex
from signing.pdf import render_contract
from signing.pdf_fonts import (
    PdfFont,
    base_characters,
    base_face,
    cache_name,
    found_or_cut,
    load_font,
)
from signing.pdf_render import render_pages
from tests.pdf_tools import pdf_text, poppler
from tests.signing.helpers import NOW, contract_document, document

FONT = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "contracts" / "templates"
# Hanzi of real given names that GB 2312 lacks (the whole face has them).
RARE = "玥堃喆"


@pytest.fixture(scope="module")
def whole() -> PdfFont:
    return load_font(FONT)


@pytest.fixture(scope="module")
def cached(whole: PdfFont, tmp_path_factory: pytest.TempPathFactory) -> PdfFont:
    font = whole.cached_in(tmp_path_factory.mktemp("fonts"))
    base_face(font, font.cache)  # cut once for the module (a few seconds)
    return font


def _with_clause(clause: str) -> CanonicalDocument:
    text = {
        "title": "商品房买卖合同（预售）",
        "chapters": [{"heading": "第一章　合同当事人", "clauses": [clause]}],
    }
    return canonical_document(
        "gf-2014-0171",
        "2026.1",
        document().terms(),
        text=text,
        template_sha256=sha256_hex(b"template"),
    )


def _fonts(pdf: bytes, directory: Path) -> list[str]:
    path = directory / "fonts.pdf"
    path.write_bytes(pdf)
    listed = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True)
    return listed.stdout.splitlines()[2:]


def test_the_base_face_covers_every_template_and_the_page_furniture() -> None:
    printed = {
        char
        for source in [*TEMPLATES.rglob("*"), Path(__file__).parents[2] / "signing/pdf_render.py"]
        if source.is_file()
        for char in source.read_text(encoding="utf-8")
        if not char.isspace()
    }
    assert printed - base_characters() == set()
    assert not set(RARE) & base_characters()  # the test below needs characters outside it


def test_the_base_face_is_a_real_cut_of_the_face(cached: PdfFont, whole: PdfFont) -> None:
    assert cached.cache is not None
    path = base_face(cached, cached.cache)
    with TTFont(path) as base, TTFont(whole.path, fontNumber=whole.index, lazy=True) as full:
        cmap, original = base.getBestCmap(), full.getBestCmap()
        kept = base_characters() & {chr(code) for code in original}
        assert len(kept) > 7_800
        # The same glyph (CID) for every character, with the whole face's width.
        for code in map(ord, kept):
            assert cmap[code] == original[code]
            assert base["hmtx"][cmap[code]][0] == full["hmtx"][original[code]][0]
        assert len(base.getGlyphOrder()) < len(full.getGlyphOrder()) // 8


def test_the_base_face_draws_the_faces_glyphs_in_truetype_outlines(
    cached: PdfFont, whole: PdfFont
) -> None:
    assert cached.cache is not None
    path = base_face(cached, cached.cache)
    with TTFont(path) as base, TTFont(whole.path, fontNumber=whole.index, lazy=True) as full:
        assert "glyf" in base and "CFF " not in base and "CFF " in full
        assert base["maxp"].tableVersion == 0x00010000 and base["maxp"].maxPoints > 0
        drawn, original = base.getGlyphSet(), full.getGlyphSet()
        cmap = base.getBestCmap()
        for char in "商品房买卖合同壹佰捌拾玖万元整（），。¥A9":
            name = cmap[ord(char)]
            glyph = base["glyf"][name]
            assert glyph.numberOfContours > 0
            # The same shape within the conversion's tolerance: the curves' extremes within
            # a font unit (of 1,000 to the em); the left side bearing is the outline's own
            # (TrueType's: its points' box, off-curve ones included).
            then, now = BoundsPen(original), BoundsPen(drawn)
            original[name].draw(then)
            drawn[name].draw(now)
            assert then.bounds is not None and now.bounds is not None
            assert all(abs(a - b) <= 1 for a, b in zip(now.bounds, then.bounds, strict=True)), char
            assert base["hmtx"][name] == (full["hmtx"][name][0], glyph.xMin)
            assert drawn[name].width == full["hmtx"][name][0]


@pytest.mark.skipif(not poppler(), reason="poppler-utils and libnss3-tools are not installed")
def test_a_contract_from_the_base_face_embeds_a_subset_and_extracts(
    cached: PdfFont, whole: PdfFont, tmp_path: Path
) -> None:
    doc = contract_document()
    pdf = render_contract(doc, cached, NOW)
    text = "".join(pdf_text(pdf, tmp_path).split())  # lines wrap anywhere in a clause
    assert "商品房买卖合同（预售）" in text and "¥1,890,000.00" in text
    assert "壹佰捌拾玖万元整" in text and "出卖人（盖章）" in text
    [font] = _fonts(pdf, tmp_path)
    # name, type, encoding, embedded, subset, ToUnicode: a TrueType CID subset, embedded.
    assert font.split()[0].startswith("MPDFAA+") and font.split()[-5:-2] == ["yes"] * 3
    assert "CID TrueType" in font
    # No bigger than from the whole face.
    assert len(pdf) <= len(render_contract(doc, whole, NOW))


@pytest.mark.skipif(not poppler(), reason="poppler-utils and libnss3-tools are not installed")
def test_a_character_outside_the_base_face_still_prints_and_extracts(
    cached: PdfFont, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clause = f"买受人：王{RARE[0]}、李{RARE[1]}、赵{RARE[2]}，共同购买本房屋。"
    with caplog.at_level(logging.WARNING, logger="fpdf"):
        pdf = render_contract(_with_clause(clause), cached, NOW)
    # fpdf2 warns of every glyph a PDF it outputs lacks: none (the base face is never output).
    assert not [r for r in caplog.records if "missing" in r.getMessage()]
    assert clause in "".join(pdf_text(pdf, tmp_path).split())
    [font] = _fonts(pdf, tmp_path)
    assert font.split()[-5:-2] == ["yes"] * 3


def test_the_cached_face_is_reused_not_cut_again(
    cached: PdfFont, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cached.cache is not None
    path = base_face(cached, cached.cache)
    before = path.stat()

    def refuse(*_: object) -> bytes:
        raise AssertionError("cut again")

    monkeypatch.setattr(pdf_fonts, "cut", refuse)
    found_or_cut.cache_clear()  # as a new process would: it finds the file on disk
    for _ in range(2):
        render_contract(contract_document(chapters=1), cached, NOW)
    assert found_or_cut.cache_info().misses == 1
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_damaged_or_stale_cache_is_replaced_and_bounded(cached: PdfFont, tmp_path: Path) -> None:
    font = cached.cached_in(tmp_path)
    name = cache_name(font)
    (tmp_path / name).write_bytes(b"OTTO not really")  # a damaged file
    (tmp_path / "cjk-base-0000-2-v0.otf").write_bytes(b"an older cut")
    found_or_cut.cache_clear()
    path = base_face(font, tmp_path)
    with TTFont(path, lazy=True) as face:
        assert ord("合") in face.getBestCmap()
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_processes_starting_at_once_each_see_a_whole_file(cached: PdfFont, tmp_path: Path) -> None:
    font = cached.cached_in(tmp_path)
    build = found_or_cut.__wrapped__  # no per-process memo: every caller writes the file
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: build(font, tmp_path), range(4)))
    assert len(set(paths)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [cache_name(font)]
    with TTFont(paths[0], lazy=True) as face:
        assert ord("合") in face.getBestCmap()


def test_a_face_removed_under_a_running_process_is_written_again(
    cached: PdfFont, tmp_path: Path
) -> None:
    font = cached.cached_in(tmp_path)
    doc = contract_document(chapters=1)
    first = render_pages(doc, font, NOW)  # fpdf2's pages: the same bytes for the same face
    base_face(font, tmp_path).unlink()  # someone cleans the data directory
    assert render_pages(doc, font, NOW) == first
    assert (tmp_path / cache_name(font)).is_file()


def test_a_data_directory_it_cannot_write_typesets_from_the_whole_face(
    cached: PdfFont, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_bytes(b"")  # the cache directory cannot be made under a file
    doc = contract_document(chapters=1)
    whole = render_pages(doc, load_font(FONT), NOW)
    assert render_pages(doc, cached.cached_in(blocked / "fonts"), NOW) == whole
