"""The font contract PDFs are typeset in: checked once, and its base face, the CJK face cut
once to what contracts print.

:func:`load_font` checks the configured font file once per process (exists, is an
OpenType/TrueType font or collection, has Chinese glyphs) and picks the Simplified
Chinese face of a collection such as Noto Serif CJK, so a missing font is a clear error
when the service starts instead of empty boxes in a contract.

fpdf2 subsets the face it is given for every PDF, with fontTools, in pure Python. Given
the whole Noto CJK face (65,535 glyphs) that cost 1.2 to 2.6 s per contract: the
parsing of its 65,535-entry tables, and the subsetting of its heavily subroutinized CFF
outlines. So the face is cut once into a *base face*: GB 2312 (the 6,763 hanzi of
everyday Chinese and its symbols, the set the contract templates are written in), ASCII,
Latin-1 and the general, CJK and full-width punctuation blocks, about 7,800 glyphs, its
outlines redrawn as TrueType (quadratic) ones when the face has CFF (cubic) outlines
(:func:`_to_quadratic`). Every contract is subset from the base face, and one
that prints a character outside it (a rare hanzi in a name or an address) is typeset
again from the whole face (:func:`signing.pdf_render.render_pages`), so nothing a
contract prints is ever lost.

Why TrueType outlines: fontTools subsets a CFF face by running every kept glyph's
charstring program, to find its components and subroutines, and compiling it back: two
thirds of the 190 ms of CPU that typesetting a contract took (on launch day, hundreds at
once). A TrueType glyph is copied as it is: typesetting from the redrawn face takes less
than half the time and embeds a smaller subset. The curves are converted within one font
unit (a thousandth of the em: a hundredth of a millimetre at body size); widths, code
points and glyph names are the face's own.

Cutting takes seconds (about 8 s of CPU), so the base face is kept on disk under the data
directory, named by the SHA-256 of the font file, the face and :data:`CUT_VERSION`, and
written atomically (a temporary file, then ``os.replace``): processes that start at once
may each cut it, and every reader sees a whole file. Only the current one is kept, and a
process that already cut it for another directory copies its bytes instead.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import string
import time
from dataclasses import dataclass, replace
from pathlib import Path

from fontTools import subset
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTCollection, TTFont, TTLibError, newTable

from signing.files import write_atomically

# Characters every contract prints: a font without them cannot typeset one.
_PROBE = (
    "商品房买卖合同出卖人买受人第一章条款（）：；，。、"
    "零壹贰叁肆伍陆柒捌玖拾佰仟万亿元角分整" + string.ascii_letters + string.digits
)


class FontError(ValueError):
    """The configured font cannot typeset Chinese contracts."""


@dataclass(frozen=True, slots=True)
class PdfFont:
    """A checked font file and, for a collection, the face to use; with ``cache``, the
    directory where its base face is kept, and PDFs are
    typeset from that (None: from the whole face)."""

    path: Path
    index: int
    family: str
    cache: Path | None = None

    def cached_in(self, directory: Path) -> PdfFont:
        return replace(self, cache=directory)


def _faces(path: Path) -> list[TTFont]:
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
        if head == b"ttcf":
            return list(TTCollection(str(path), lazy=True).fonts)
        return [TTFont(str(path), lazy=True)]
    except (OSError, TTLibError, AssertionError, ValueError) as error:
        raise FontError(f"{path} is not a readable OpenType/TrueType font: {error}") from None


def _family(face: TTFont) -> str:
    return str(face["name"].getDebugName(4) or face["name"].getDebugName(1) or "")


@functools.lru_cache(maxsize=4)
def load_font(path: str | Path) -> PdfFont:
    """Check ``path`` can typeset Chinese; prefer the Simplified Chinese face of a collection."""
    font_path = Path(path)
    if not font_path.is_file():
        raise FontError(
            f"the PDF font {font_path} does not exist: install Debian's fonts-noto-cjk "
            "or point WANGQIAN_PDF_FONT at a Chinese OpenType/TrueType font"
        )
    faces = _faces(font_path)
    order = sorted(range(len(faces)), key=lambda i: not _family(faces[i]).endswith(" SC"))
    for index in order:
        cmap = faces[index].getBestCmap() or {}
        if all(ord(char) in cmap for char in _PROBE):
            return PdfFont(font_path, index, _family(faces[index]))
    raise FontError(f"the PDF font {font_path} has no face with Chinese characters")


# Bump when the characters or the options of the cut change: the cached file's name moves.
CUT_VERSION = 2
PREFIX = "cjk-base-"
# Code point blocks kept whole: ASCII, Latin-1 (¥, ×, ·), general punctuation (— … ‰),
# CJK symbols and punctuation (、。《》【】), half- and full-width forms (（），：０-９).
_BLOCKS = ((0x20, 0x7F), (0xA0, 0x100), (0x2000, 0x2070), (0x3000, 0x3040), (0xFF00, 0xFFF0))
# Tables fpdf2 never reads nor embeds: layout and vertical metrics, which it would
# otherwise subset and write for every PDF.
_DROPPED = ("GSUB", "GPOS", "GDEF", "BASE", "VORG", "vhea", "vmtx")
_STALE_TEMPORARY_S = 3600
# Largest distance, in font units, between a cubic curve and the quadratic ones drawn for it.
_QUADRATIC_ERROR = 1.0

log = logging.getLogger(__name__)


@functools.cache
def base_characters() -> frozenset[str]:
    """Every character of the base face: GB 2312 and the blocks above."""
    found = {chr(code) for start, end in _BLOCKS for code in range(start, end)}
    # GB 2312 is its EUC-CN rows 0xA1-0xF7 by columns 0xA1-0xFE; the codec knows which exist.
    for row in range(0xA1, 0xF8):
        for column in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):
                found.add(bytes((row, column)).decode("gb2312"))
    return frozenset(found)


@functools.lru_cache(maxsize=4)
def _digest(path: Path, size: int, modified_ns: int) -> str:
    """SHA-256 of a font file, computed once per process while its size and time hold."""
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def cache_name(font: PdfFont) -> str:
    """The base face's file name: the font's bytes, the face and the cut decide it."""
    stat = font.path.stat()
    digest = _digest(font.path, stat.st_size, stat.st_mtime_ns)
    return f"{PREFIX}{digest[:32]}-{font.index}-v{CUT_VERSION}.otf"


@functools.lru_cache(maxsize=2)
def cut(path: Path, index: int, name: str) -> bytes:
    """The base face of one face of a font file (``name`` keys the cache: the file's hash)."""
    face = TTFont(path, fontNumber=index, lazy=True, recalcTimestamp=False, recalcBBoxes=False)
    options = subset.Options(
        notdef_outline=True,
        recommended_glyphs=True,
        name_IDs=["*"],  # fpdf2 names the PDF font after the face's names
        name_languages=["*"],
        layout_features=[],
        desubroutinize=True,
    )
    options.drop_tables += list(_DROPPED)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(ord(char) for char in base_characters()))
    subsetter.subset(face)
    if "CFF " in face:
        _to_quadratic(face)
    output = io.BytesIO()
    face.save(output)
    return output.getvalue()


def _to_quadratic(face: TTFont) -> None:
    """Replace a face's CFF outlines by TrueType ones, in place (module docstring: why).

    fontTools draws each glyph through its cubic-to-quadratic pen into a ``glyf`` table;
    the tables that describe CFF go, and ``maxp`` becomes the TrueType version, whose
    outline figures fontTools computes when the face is saved."""
    glyph_set = face.getGlyphSet()
    order = face.getGlyphOrder()
    glyphs = {}
    for name in order:
        pen = TTGlyphPen(None)
        # Reversed: CFF draws outer contours counter-clockwise, TrueType clockwise.
        glyph_set[name].draw(Cu2QuPen(pen, _QUADRATIC_ERROR, reverse_direction=True))
        glyphs[name] = pen.glyph()
    glyf = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = glyphs
    face["glyf"] = glyf
    face["loca"] = newTable("loca")
    del face["CFF "]
    maxp = face["maxp"]
    maxp.tableVersion = 0x00010000
    maxp.maxZones = 1
    for field in (
        "maxTwilightPoints",
        "maxStorage",
        "maxFunctionDefs",
        "maxInstructionDefs",
        "maxStackElements",
        "maxSizeOfInstructions",
    ):
        setattr(maxp, field, 0)
    face["head"].glyphDataFormat = 0
    # The glyph names stay (a CID-keyed face's "cid12345"), written in the post table
    # rather than derived from the character map by whoever reads the face.
    face["post"].formatType = 2.0
    face["post"].extraNames = []
    face["post"].mapping = {}
    face.sfntVersion = "\x00\x01\x00\x00"
    # Bounding boxes, left side bearings and maxp's outline figures from the new outlines.
    face.recalcBBoxes = True
    metrics = face["hmtx"]
    for name, glyph in glyphs.items():
        if glyph.numberOfContours:
            glyph.recalcBounds(glyf)
            metrics[name] = (metrics[name][0], glyph.xMin)


def _usable(path: Path) -> bool:
    try:
        with TTFont(path, lazy=True) as face:
            cmap = face.getBestCmap() or {}
    except (OSError, TTLibError, AssertionError, ValueError):
        return False
    return ord("合") in cmap and ord("A") in cmap


def _prune(directory: Path, keep: str) -> None:
    """Bounded: only the current base face stays, and no temporary file of a dead cut."""
    for stale in directory.glob(f"{PREFIX}*.otf"):
        if stale.name != keep:
            with contextlib.suppress(OSError):
                stale.unlink()
    for temporary in directory.glob(f".{PREFIX}*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - temporary.stat().st_mtime > _STALE_TEMPORARY_S:
                temporary.unlink()


def base_face(font: PdfFont, directory: Path) -> Path:
    """The base face of ``font`` in ``directory``: read from there, or cut and written once.
    A file removed since this process checked it (a cleaned data directory) is found or
    cut again rather than failing a contract."""
    path = found_or_cut(font, directory)
    if not path.is_file():
        found_or_cut.cache_clear()
        path = found_or_cut(font, directory)
    return path


@functools.lru_cache(maxsize=8)
def found_or_cut(font: PdfFont, directory: Path) -> Path:
    """Checked once per process: a damaged file is cut again."""
    name = cache_name(font)
    target = directory / name
    if target.is_file() and _usable(target):
        return target
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write_atomically(target, cut(font.path, font.index, name))
    _prune(directory, name)
    log.info(
        "cut the base face of %s (%d characters) in %.1f s: %s",
        font.path,
        len(base_characters()),
        time.perf_counter() - started,
        target,
    )
    return target
