"""The in-page QR decoder (``miniapp_mock/pages/qr-decode.js``) in Chromium, on real images.

No server: a blank page loads the decoder, and a page-side helper turns image bytes into
``ImageData`` (``createImageBitmap`` + canvas) and calls ``QrDecoder.decode`` on them. Cases
are decoded in batches, one ``page.evaluate`` per group, the first time a group is needed.

Groups of cases, each case named in its test id:
- ``clean``: codes made by the ``qrcode`` package: every version 1-40, every level, every
  mask, numeric / alphanumeric / URL bytes / UTF-8 Chinese / mixed-segment payloads. Text,
  version, level and mask must match, and nothing needs correcting on a pixel-exact image.
- ``server``: ``signing.qr.qr_png`` codes of scan URLs, as the server prints them.
- ``photos``: those codes in simulated phone photos (``qr_photos``) that a phone should
  read: any rotation, tilt up to 35°, blur, uneven light, shadow, noise, JPEG, the code
  filling 15-80 % of the frame, frames 640-1600 px.
- ``hard``: photos beyond that (steeper, blurrier, darker...), asserted all the same.
- ``limit``: random draws the decoder is known not to read (blur near 0.4 module with a
  tilt near 30°): null or the exact text, never a wrong one.
- ``damage``: codes with codewords destroyed within the level's capacity (must decode and
  report the corrections), beyond it (must give null, never a wrong text), and with one
  copy of the format or version information destroyed (must decode).
- ``refuse``: images without a readable code: null, never an exception.
- ``inverted``: light modules on a dark ground, which the decoder is to read too.
- ``segments``: bit streams written by hand (ECI, structured append, FNC1, Latin-1 bytes,
  invalid modes and counts).
"""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
import qrcode
import qrcode.constants
import qrcode.image.pure
import qrcode.util
from PIL import Image, ImageOps
from qrcode.base import rs_blocks

from signing.qr import SCENE_ALPHABET, qr_png

from .qr_photos import Shot, _perspective, everyday_shot, finder_sheet, photograph

ROOT = Path(__file__).resolve().parents[2]
DECODER = ROOT / "miniapp_mock" / "pages" / "qr-decode.js"
LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
LEVEL_OF = {bits: name for name, bits in LEVELS.items()}
NUMERIC, ALNUM, BYTES = (
    qrcode.util.MODE_NUMBER,
    qrcode.util.MODE_ALPHA_NUM,
    qrcode.util.MODE_8BIT_BYTE,
)
ALNUM_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
CHINESE = "网签合同 房号 603 买受人 出卖人 长沙市岳麓区 签约完成。"
URL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_/?=&."
SCAN_BASE = "http://192.168.1.20:8000/miniapp/#/scan/"

PAGE_HELPER = """
window.decodeImages = async (images) => {
  const results = [];
  for (const encoded of images) {
    const raw = atob(encoded);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    const bitmap = await createImageBitmap(new Blob([bytes]),
      {colorSpaceConversion: "none", premultiplyAlpha: "none"});
    const canvas = document.createElement("canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const context = canvas.getContext("2d", {willReadFrequently: true});
    context.drawImage(bitmap, 0, 0);
    bitmap.close();
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
    results.push(window.decodePixels(pixels.data, pixels.width, pixels.height));
  }
  return results;
};
window.decodePixels = (data, width, height) => {
  const started = performance.now();
  try {
    const result = QrDecoder.decode(data, width, height);
    const ms = performance.now() - started;
    if (result === null) return {result: null, ms};
    if (typeof result !== "object") return {bad: `returned ${typeof result}: ${result}`, ms};
    const {text, version, level, mask, corrected} = result;
    return {result: {text, version, level, mask, corrected}, ms};
  } catch (error) {
    return {error: String((error && error.stack) || error), ms: performance.now() - started};
  }
};
"""


@dataclass(frozen=True)
class Expect:
    """What the decoder must say about an image (``text`` None: it must say null).
    ``version``, ``level``, ``mask``, ``corrected`` are checked when not None."""

    text: str | None
    version: int | None = None
    level: str | None = None
    mask: int | None = None
    corrected: int | None = None
    either: bool = False  # null or exactly ``text`` are both right (nothing else is)
    note: str = ""  # said in a failure message (e.g. how many codewords were damaged)


@dataclass(frozen=True)
class Case:
    """A named image, made only when its group is decoded (collection stays fast)."""

    name: str
    build: Callable[[], tuple[bytes, Expect]]


# ---------------------------------------------------------------- codes and their anatomy


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _render(matrix: list[list[bool]], box: int, border: int = 4) -> bytes:
    """PNG of a module matrix (no border in it), dark modules black on white."""
    n = len(matrix)
    image = Image.new("L", (n, n))
    image.putdata([0 if dark else 255 for row in matrix for dark in row])
    image = ImageOps.expand(image, border, fill=255)
    return _png(image.resize((image.width * box, image.height * box), Image.NEAREST))


def _library_png(code: qrcode.QRCode) -> bytes:
    out = io.BytesIO()
    code.make_image(image_factory=qrcode.image.pure.PyPNGImage).save(out)
    return out.getvalue()


def _segment_bits(segment: qrcode.util.QRData, version: int) -> int:
    n = len(segment.data)
    data = {
        NUMERIC: 10 * (n // 3) + (0, 4, 7)[n % 3],
        ALNUM: 11 * (n // 2) + 6 * (n % 2),
        BYTES: 8 * n,
    }[segment.mode]
    return 4 + qrcode.util.length_in_bits(segment.mode, version) + data


def _capacity(version: int, level: str) -> int:
    """Data bits of a version and level."""
    return sum(block.data_count for block in rs_blocks(version, LEVELS[level])) * 8


def _fill(
    make: Callable[[int], qrcode.util.QRData], version: int, budget: int
) -> qrcode.util.QRData:
    """The longest segment ``make(n)`` that fits ``budget`` bits."""
    low, high = 0, budget // 3 + 1
    while low < high:
        middle = (low + high + 1) // 2
        if _segment_bits(make(middle), version) <= budget:
            low = middle
        else:
            high = middle - 1
    return make(low)


def _payload(kind: str, version: int, level: str, fill: float, rng: random.Random):
    """Segments of one kind of payload filling ``fill`` of the data capacity; ``mixed`` is
    a numeric, an alphanumeric, a UTF-8 Chinese and a URL segment, a quarter each."""
    budget = int(_capacity(version, level) * fill)
    if kind == "mixed":
        parts = ("numeric", "alnum", "chinese", "url")
        return [_payload(part, version, level, fill / 4, rng)[0] for part in parts]
    longest = budget // 3 + 1  # no mode packs a character in fewer than 3.3 bits
    if kind == "chinese":
        chinese = CHINESE * (longest // len(CHINESE) + 1)

        def make(n: int) -> qrcode.util.QRData:  # at most n bytes (one character at least)
            text = chinese[: max(n // 3, 1)]
            while len(text) > 1 and len(text.encode()) > n:
                text = text[:-1]
            return qrcode.util.QRData(text.encode(), BYTES)

        return [_fill(make, version, budget)]
    if kind == "numeric":
        text = "".join(rng.choice("0123456789") for _ in range(longest))
    elif kind == "alnum":
        text = "".join(rng.choice(ALNUM_CHARS) for _ in range(longest))
    else:
        text = "https://wq.example.cn/c/" + "".join(rng.choice(URL_CHARS) for _ in range(longest))
    mode = NUMERIC if kind == "numeric" else None  # otherwise qrcode picks alnum or bytes
    return [_fill(lambda n: qrcode.util.QRData(text[: max(n, 1)], mode), version, budget)]


def _text(segments: list[qrcode.util.QRData]) -> str:
    return "".join(segment.data.decode() for segment in segments)


def _code(segments, version: int | None, level: str, mask: int | None, box: int = 4):
    code = qrcode.QRCode(
        version=version, error_correction=LEVELS[level], mask_pattern=mask, box_size=box
    )
    for segment in segments:
        code.add_data(segment)
    code.make(fit=version is None)
    return code


def _matrix(code: qrcode.QRCode) -> list[list[bool]]:
    """The module matrix without the quiet zone."""
    return [list(row) for row in code.modules]


def _function_modules(version: int) -> set[tuple[int, int]]:
    """Finder patterns, separators, timing, alignment, format and version areas."""
    n = 17 + 4 * version
    taken: set[tuple[int, int]] = set()

    def area(rows: range, cols: range) -> None:
        taken.update((r, c) for r in rows for c in cols)

    area(range(9), range(9))
    area(range(9), range(n - 8, n))
    area(range(n - 8, n), range(9))
    area(range(n), range(6, 7))
    area(range(6, 7), range(n))
    centres = qrcode.util.pattern_position(version)
    for r in centres:
        for c in centres:
            if (r, c) not in {(6, 6), (6, centres[-1]), (centres[-1], 6)}:
                area(range(r - 2, r + 3), range(c - 2, c + 3))
    if version >= 7:
        area(range(6), range(n - 11, n - 8))
        area(range(n - 11, n - 8), range(6))
    return taken


def _codeword_modules(version: int) -> list[list[tuple[int, int]]]:
    """The modules of each codeword in reading order (8 each, most significant bit first),
    following the two-column zigzag of ISO/IEC 18004 from the bottom-right corner."""
    n = 17 + 4 * version
    taken = _function_modules(version)
    order, upward, col = [], True, n - 1
    while col > 0:
        if col == 6:
            col -= 1
        for r in range(n - 1, -1, -1) if upward else range(n):
            order.extend((r, c) for c in (col, col - 1) if (r, c) not in taken)
        upward, col = not upward, col - 2
    return [order[i : i + 8] for i in range(0, len(order) - 7, 8)]


def _blocks(version: int, level: str) -> list[tuple[int, int]]:
    """(block, correctable errors) of each codeword in the interleaved order."""
    blocks = rs_blocks(version, LEVELS[level])
    owners = []
    for i in range(max(b.data_count for b in blocks)):
        owners += [(k, i) for k, b in enumerate(blocks) if i < b.data_count]
    for _ in range(blocks[0].total_count - blocks[0].data_count):
        owners += [(k, 0) for k in range(len(blocks))]
    return [(k, (blocks[k].total_count - blocks[k].data_count) // 2) for k, _ in owners]


def _format_positions(n: int) -> tuple[list, list]:
    """Modules of the two format-information copies, bit 14 first."""
    first = [(8, c) for c in (0, 1, 2, 3, 4, 5, 7, 8)] + [(r, 8) for r in (7, 5, 4, 3, 2, 1, 0)]
    second = [(r, 8) for r in range(n - 1, n - 8, -1)] + [(8, c) for c in range(n - 8, n)]
    return first, second


def _version_positions(n: int) -> tuple[list, list]:
    """Modules of the two version-information copies, bit 0 first."""
    return (
        [(i // 3, n - 11 + i % 3) for i in range(18)],
        [(n - 11 + i % 3, i // 3) for i in range(18)],
    )


def _read(matrix, positions) -> int:
    value = 0
    for r, c in positions:
        value = value << 1 | matrix[r][c]
    return value


FORMATS = {
    qrcode.util.BCH_type_info(bits << 3 | mask): (LEVEL_OF[bits], mask)
    for bits in LEVELS.values()
    for mask in range(8)
}


def _checked_anatomy(code: qrcode.QRCode, level: str) -> list[list[bool]]:
    """The code's matrix, after checking this file's reading of it against qrcode's own
    data (so a damage test cannot pass or fail because of a mistake here)."""
    matrix, version = _matrix(code), code.version
    first, second = _format_positions(len(matrix))
    fmt = _read(matrix, first)
    assert fmt == _read(matrix, second) and FORMATS[fmt] == (level, code.mask_pattern)
    unmask = qrcode.util.mask_func(code.mask_pattern)
    words = [
        sum((matrix[r][c] ^ unmask(r, c)) << (7 - i) for i, (r, c) in enumerate(word))
        for word in _codeword_modules(version)
    ]
    assert words == list(qrcode.util.create_data(version, LEVELS[level], code.data_list))
    if version >= 7:
        bits = [matrix[r][c] for r, c in _version_positions(len(matrix))[0]]
        assert sum(b << i for i, b in enumerate(bits)) == qrcode.util.BCH_type_number(version)
    return matrix


# ---------------------------------------------------------------- the cases


def _clean_case(version: int, level: str, mask: int, kind: str, fill: float, box: int) -> Case:
    def build() -> tuple[bytes, Expect]:
        segments = _payload(kind, version, level, fill, random.Random(f"{version}{level}{mask}"))
        png = _library_png(_code(segments, version, level, mask, box))
        return png, Expect(_text(segments), version, level, mask, corrected=0)

    return Case(f"v{version}-{level}-mask{mask}-{kind}-fill{fill:.0%}-box{box}", build)


def _natural_case(label: str, text: str, level: str) -> Case:
    """A short payload as people write it: qrcode picks the version and the modes."""

    def build() -> tuple[bytes, Expect]:
        code = qrcode.QRCode(error_correction=LEVELS[level], mask_pattern=5, box_size=4)
        code.add_data(text)
        code.make(fit=True)
        return _library_png(code), Expect(text, code.version, level, 5, corrected=0)

    return Case(f"natural-{label}-{level}", build)


def _clean_cases() -> list[Case]:
    kinds = ["numeric", "alnum", "url", "chinese", "mixed"]
    cases = []
    for version in range(1, 41):  # every version, twice, with different everything
        first = ("LMQH"[version % 4], version % 8, kinds[version % 5], 1.0, 2 + version % 3)
        second = ("HQML"[version % 4], (version * 3 + 1) % 8, kinds[(version + 2) % 5], 0.7, 3)
        cases += [_clean_case(version, *first), _clean_case(version, *second)]
    for i, (level, mask) in enumerate((lv, m) for lv in "LMQH" for m in range(8)):
        cases.append(_clean_case(1 + i % 9, level, mask, kinds[i % 5], 0.9, 4))  # level x mask
    natural = {
        "chinese-phrase": ("网签合同 房号 603", "L"),
        "digits": ("430104198801010011", "M"),
        "upper": ("HT-2024-000603 ROOM 603", "Q"),
        "url": ("https://wq.example.cn/miniapp/#/contract/603?from=qr", "H"),
        "auto-segments": ("603号房 HT2024000603 https://wq.example.cn/c/603 " + "1" * 30, "M"),
    }
    cases += [_natural_case(label, text, level) for label, (text, level) in natural.items()]
    return cases


def _scan_url(seed: int | str, length: int = 22, base: str = SCAN_BASE) -> str:
    rng = random.Random(seed)
    return base + "".join(rng.choice(SCENE_ALPHABET) for _ in range(length))


def _server_expect(url: str) -> Expect:
    """What ``qr_png(url)`` holds: the URL, at level M, in the version and mask it picks."""
    code = qrcode.QRCode(error_correction=LEVELS["M"])
    code.add_data(url)
    code.make(fit=True)
    level, mask = FORMATS[_read(_matrix(code), _format_positions(len(code.modules))[0])]
    return Expect(url, code.version, level, mask)


def _server_cases() -> list[Case]:
    urls = [_scan_url(seed) for seed in range(6)]
    urls += [
        _scan_url("max", 32),
        _scan_url("https", 22, "https://wq.hnzjt.gov.cn/miniapp/#/scan/"),
        _scan_url("localhost", 22, "http://127.0.0.1:8000/miniapp/#/scan/"),
    ]
    cases = []
    for i, url in enumerate(urls):
        box, border = [(8, 4), (4, 4), (3, 2), (12, 4), (6, 2)][i % 5]

        def build(url: str = url, box: int = box, border: int = border) -> tuple[bytes, Expect]:
            return qr_png(url, box_size=box, border=border), replace(
                _server_expect(url), corrected=0
            )

        cases.append(Case(f"qr_png-{url}-box{box}-border{border}", build))
    return cases


@cache
def _printed(url: str) -> tuple[bytes, Expect]:
    return qr_png(url), _server_expect(url)


def _photo_case(
    name: str, shot: Shot, url_seed: str | None = None, *, either: bool = False
) -> Case:
    """A photo of a printed scan code; twelve scene strings take turns (codes are cached).
    ``either``: null is accepted too (the decoder's measured limit), a wrong text never."""
    name = f"{name}-seed{shot.seed}"

    def build() -> tuple[bytes, Expect]:
        url = _scan_url(url_seed or f"scene{shot.seed % 12}")
        png, expect = _printed(url)
        photo = photograph(png, shot)
        note = f"{shot}; coverage used {photo.coverage:.2f}, module {photo.module_px:.1f} px, url {url}"
        return photo.data, replace(expect, note=note, either=either)

    return Case(name, build)


def _photo_cases() -> list[Case]:
    """Photos a phone camera should read."""
    mild = Shot(coverage=0.3, blur=0.15, noise=3, light=0.8, jpeg=80)
    cases = []
    for angle in (0, 7, 15, 30, 45, 60, 90, 110, 135, 180, 200, 225, 250, 270, 315, 345, 359):
        shot = replace(mild, rotation=angle, light_angle=angle, seed=angle)
        cases.append(_photo_case(f"rotation{angle}", shot))
    for i, (tilt, axis) in enumerate((t, a) for t in (15, 25, 30, 35) for a in (0, 45, 90, 135)):
        shot = replace(
            mild, tilt=tilt, tilt_axis=axis, rotation=i * 37 % 360, coverage=0.35, seed=100 + i
        )
        cases.append(_photo_case(f"tilt{tilt}-axis{axis}-rotation{i * 37 % 360}", shot))
    # (sigma 0.5 and more is past what module centres keep: see the HARD cases)
    for i, blur in enumerate((0.2, 0.3, 0.35, 0.4, 0.4)):
        cases.append(
            _photo_case(f"blur{blur}", replace(mild, blur=blur, rotation=i * 71, seed=200 + i))
        )
    for i, (light, shadow) in enumerate(
        ((0.35, 0), (0.5, 0), (0.45, 0), (1, 0.4), (0.8, 0.6), (0.6, 0.5))
    ):
        shot = replace(
            mild, light=light, light_angle=i * 60, shadow=shadow, rotation=i * 53, seed=300 + i
        )
        cases.append(_photo_case(f"light{light}-shadow{shadow}", shot))
    for i, noise in enumerate((6, 10, 15, 20)):
        cases.append(
            _photo_case(f"noise{noise}", replace(mild, noise=noise, rotation=i * 97, seed=400 + i))
        )
    for i, quality in enumerate((50, 60, 70, 85)):
        shot = replace(mild, jpeg=quality, noise=6, rotation=i * 43, seed=500 + i)
        cases.append(_photo_case(f"jpeg{quality}", shot))
    for i, (size, coverage) in enumerate(
        (s, c) for s in (640, 1000, 1600) for c in (0.15, 0.3, 0.5, 0.8)
    ):
        shot = replace(mild, size=size, coverage=coverage, rotation=i * 29, seed=600 + i)
        cases.append(_photo_case(f"size{size}-coverage{coverage}", shot))
    for i, (ink, paper) in enumerate(((120, 190), (100, 170), (140, 215))):
        shot = replace(mild, ink=ink, paper=paper, rotation=i * 120 + 10, seed=700 + i)
        cases.append(_photo_case(f"contrast-ink{ink}-paper{paper}", shot))
    for i in range(2):
        shot = replace(mild, portrait=True, size=1280, rotation=90 + i * 150, tilt=20, seed=800 + i)
        cases.append(_photo_case("portrait", shot))
    # everything at once, drawn from what a phone sees; 2090, 5129: draws that sweeps of 600
    # such shots once found unread (the decoder was improved until they were read)
    for seed in (*range(900, 912), 2090, 5129):
        cases.append(_photo_case("random", everyday_shot(seed)))
    return cases


def _limit_cases() -> list[Case]:
    """The decoder's measured limit: draws it does not read. Each blurs by about 0.4 of a
    module with a tilt near 30°, so the far finder pattern's thin light ring closes (its
    module centres still hold the code, so a better finder search could read them). They
    must give null or the exact text, never anything else; the phone user retakes the photo.
    """
    return [
        _photo_case("limit-random", everyday_shot(seed), either=True) for seed in (2211, 5016)
    ]


def _hard_cases() -> list[Case]:
    """HARD: beyond what a phone camera usually has to read. Asserted all the same."""
    base = Shot(coverage=0.35, blur=0.15, noise=3, jpeg=80)
    hard = {
        "tilt40": replace(base, tilt=40, tilt_axis=30, rotation=20, seed=1000),
        "tilt45": replace(base, tilt=45, tilt_axis=120, rotation=200, seed=1001),
        # sigma 0.45-0.5 module: lone modules' centres are near mid-grey (0.5 is unreadable
        # even knowing the grid and the right local threshold at every module)
        "blur0.45": replace(base, blur=0.45, rotation=33, seed=1002),
        "noise30": replace(base, noise=30, rotation=300, seed=1003),
        "light0.2": replace(base, light=0.2, light_angle=45, rotation=80, seed=1004),
        "sharp-shadow0.6": replace(base, shadow=0.6, shadow_edge=0.3, rotation=15, seed=1005),
        "coverage0.08-640": replace(base, size=640, coverage=0.08, rotation=45, seed=1006),
        "contrast-ink150-paper195-noise8": replace(base, ink=150, paper=195, noise=8, seed=1007),
        "jpeg35-noise10": replace(base, jpeg=35, noise=10, rotation=130, seed=1008),
        "all-at-once": Shot(
            size=800,
            coverage=0.2,
            rotation=222,
            tilt=30,
            tilt_axis=60,
            blur=0.3,
            light=0.4,
            light_angle=10,
            shadow=0.4,
            noise=12,
            ink=90,
            paper=200,
            jpeg=55,
            seed=1009,
        ),
    }
    return [_photo_case(f"HARD-{name}", shot) for name, shot in hard.items()]


def _damaged(code: qrcode.QRCode, level: str, rng: random.Random, per_block: Callable[[int], int]):
    """A matrix with ``per_block(t)`` codewords of each block changed (t: the block's
    capacity), and how many codewords were changed."""
    matrix = _checked_anatomy(code, level)
    words = _codeword_modules(code.version)
    owners = _blocks(code.version, level)
    changed = 0
    for block in sorted({k for k, _ in owners}):
        mine = [i for i, (k, _) in enumerate(owners) if k == block]
        for i in rng.sample(mine, per_block(owners[mine[0]][1])):
            flips = rng.randint(1, 255)
            for bit, (r, c) in enumerate(words[i]):
                if flips >> bit & 1:
                    matrix[r][c] = not matrix[r][c]
            changed += 1
    return matrix, changed


def _blot(code: qrcode.QRCode, level: str, dark: bool, centre: tuple[float, float], limit: float):
    """The biggest square blot (painted dark or light) at ``centre`` (fractions of the side)
    that damages at most ``limit`` times a block's capacity in every block: (matrix,
    codewords damaged, most in one block, the block's capacity, blot side)."""
    clean = _checked_anatomy(code, level)
    words, owners = _codeword_modules(code.version), _blocks(code.version, level)
    n, capacity, best = len(clean), owners[0][1], None
    for side in range(2, n):
        top, left = int(centre[0] * n - side / 2), int(centre[1] * n - side / 2)
        matrix = [row[:] for row in clean]
        for r in range(max(top, 0), min(top + side, n)):
            for c in range(max(left, 0), min(left + side, n)):
                matrix[r][c] = dark
        hit = [
            i for i, word in enumerate(words) if any(matrix[r][c] != clean[r][c] for r, c in word)
        ]
        per_block = [sum(1 for i in hit if owners[i][0] == k) for k in {k for k, _ in owners}]
        if max(per_block) > limit * capacity:
            break
        best = (matrix, len(hit), max(per_block), capacity, side)
    assert best is not None
    return best


def _destroy(matrix, positions, valid: set[int], rng: random.Random, far: int) -> None:
    """Overwrite an information copy (``positions`` most significant bit first) with bits
    ``far`` or more flips away from every valid value, so that it cannot be corrected."""
    while True:
        value = rng.getrandbits(len(positions))
        if all(bin(value ^ v).count("1") >= far for v in valid):
            break
    for i, (r, c) in enumerate(positions):
        matrix[r][c] = bool(value >> (len(positions) - 1 - i) & 1)


def _codeword_damage_cases(version: int, level: str, mask: int) -> list[Case]:
    name = f"v{version}-{level}-mask{mask}"

    def code_and_text() -> tuple[qrcode.QRCode, str, random.Random]:
        rng = random.Random(f"damage{version}")
        segments = _payload("url", version, level, 0.95, rng)
        return _code(segments, version, level, mask), _text(segments), rng

    def damaged(
        per_block: Callable[[int], int], readable: bool
    ) -> Callable[[], tuple[bytes, Expect]]:
        def build() -> tuple[bytes, Expect]:
            code, text, rng = code_and_text()
            matrix, changed = _damaged(code, level, rng, per_block)
            note = f"{changed} codewords damaged"
            if not readable:
                return _render(matrix, 3), Expect(None, note=note)
            return _render(matrix, 3), Expect(text, version, level, mask, changed, note=note)

        return build

    def destroyed(copy: int, what: str) -> Callable[[], tuple[bytes, Expect]]:
        def build() -> tuple[bytes, Expect]:
            code, text, rng = code_and_text()
            matrix = _checked_anatomy(code, level)
            n = len(matrix)
            if what == "format":
                _destroy(matrix, _format_positions(n)[copy], set(FORMATS), rng, 4)
            else:
                valid = {qrcode.util.BCH_type_number(v) for v in range(7, 41)}
                _destroy(matrix, _version_positions(n)[copy][::-1], valid, rng, 5)
            return _render(matrix, 3), Expect(text, version, level, mask, corrected=0)

        return build

    cases = [
        Case(f"{name}-every-block-at-capacity", damaged(lambda t: t, True)),
        Case(f"{name}-every-block-half-capacity", damaged(lambda t: t // 2, True)),
        # beyond capacity: must be null (a wrong text would be the worst outcome)
        Case(f"{name}-BEYOND-every-block-capacity-plus-1", damaged(lambda t: t + 1, False)),
        Case(f"{name}-BEYOND-every-block-twice-capacity", damaged(lambda t: 2 * t, False)),
    ]
    for copy in (0, 1):  # one copy of the format (version) information destroyed
        cases.append(Case(f"{name}-format-copy{copy + 1}-destroyed", destroyed(copy, "format")))
        if version >= 7:
            cases.append(
                Case(f"{name}-version-copy{copy + 1}-destroyed", destroyed(copy, "version"))
            )
    return cases


def _blot_cases(version: int, level: str, dark: bool, centre: tuple[float, float]) -> list[Case]:
    ink = "dark" if dark else "light"
    name = f"v{version}-{level}-{ink}-blot-at-{centre[0]:.2f},{centre[1]:.2f}"

    def blotted(limit: float) -> Callable[[], tuple[bytes, Expect]]:
        def build() -> tuple[bytes, Expect]:
            segments = _payload("mixed", version, level, 0.9, random.Random(f"blot{version}"))
            code = _code(segments, version, level, 2)
            matrix, changed, most, capacity, side = _blot(code, level, dark, centre, limit)
            note = f"{side}x{side} modules; {changed} codewords hit, at most {most} of a block's {capacity}"
            if limit <= 1:
                return _render(matrix, 3), Expect(
                    _text(segments), version, level, 2, changed, note=note
                )
            assert most > capacity, note
            return _render(matrix, 3), Expect(None, note=note)

        return build

    return [Case(name, blotted(1.0)), Case(f"{name}-BEYOND-capacity", blotted(2.0))]


def _both_formats_destroyed() -> tuple[bytes, Expect]:
    """Both format copies destroyed: a decoder may try all 32 formats; it must not misread."""
    segments = _payload("alnum", 6, "M", 0.9, random.Random("both"))
    code = _code(segments, 6, "M", 5)
    matrix = _checked_anatomy(code, "M")
    rng = random.Random("both formats")
    for positions in _format_positions(len(matrix)):
        _destroy(matrix, positions, set(FORMATS), rng, 4)
    return _render(matrix, 3), Expect(_text(segments), either=True)


def _damage_cases() -> list[Case]:
    cases = []
    for spec in [
        (4, "L", 0),
        (5, "M", 3),
        (7, "Q", 6),
        (10, "H", 1),
        (15, "M", 4),
        (22, "Q", 7),
        (27, "L", 2),
    ]:
        cases += _codeword_damage_cases(*spec)
    cases += _blot_cases(5, "H", False, (0.5, 0.5))  # a logo in the middle
    cases += _blot_cases(10, "H", False, (0.5, 0.5))  # ... over the central alignment pattern
    cases += _blot_cases(6, "Q", True, (0.4, 0.65))  # ink stains
    cases += _blot_cases(8, "M", True, (0.7, 0.35))
    cases.append(Case("v6-M-both-format-copies-destroyed-null-or-text", _both_formats_destroyed))
    return cases


def _garbage(version: int, seed: int, keep_format: bool) -> bytes:
    """Finder patterns, timing, alignment (and format information) of a real code, random
    modules everywhere else."""
    rng = random.Random(seed)
    code = _code([qrcode.util.QRData(b"x")], version, "M", 3)
    matrix = _matrix(code)
    taken = _function_modules(version)
    n = len(matrix)
    formats = set(_format_positions(n)[0] + _format_positions(n)[1])
    for r in range(n):
        for c in range(n):
            if (r, c) not in taken or (not keep_format and (r, c) in formats):
                matrix[r][c] = rng.random() < 0.5
    return _render(matrix, 4)


def _refuse_cases() -> list[Case]:
    def null(make: Callable[[], bytes]) -> Callable[[], tuple[bytes, Expect]]:
        return lambda: (make(), Expect(None))

    def plain(size: tuple[int, int], grey: int) -> Callable[[], tuple[bytes, Expect]]:
        return null(lambda: _png(Image.new("L", size, grey)))

    def noise() -> bytes:
        return _png(Image.frombytes("L", (640, 480), random.Random(1).randbytes(640 * 480)))

    def blocks() -> bytes:  # random "modules": a scanner's worst distraction
        cells = Image.frombytes("L", (40, 30), random.Random(2).randbytes(1200))
        return _png(cells.point(lambda v: 255 * (v > 127)).resize((640, 480), Image.NEAREST))

    cases = [
        Case("blank-white-640x480", plain((640, 480), 255)),
        Case("blank-black-640x480", plain((640, 480), 0)),
        Case("blank-grey-1600x1200", plain((1600, 1200), 128)),
        Case("1x1-white", plain((1, 1), 255)),
        Case("1x1-black", plain((1, 1), 0)),
        Case("2x3-grey", plain((2, 3), 90)),
        Case("1x500-strip", plain((1, 500), 0)),
        Case("random-noise-640x480", null(noise)),
        Case("random-blocks-640x480", null(blocks)),
    ]
    for seed in (1, 2, 3):
        shot = Shot(size=1000, noise=5, light=0.6, seed=seed)
        cases.append(
            Case(
                f"desk-without-code-seed{seed}", null(lambda shot=shot: photograph(None, shot).data)
            )
        )
    for version, keep in ((1, True), (4, True), (10, True), (3, False), (7, False)):
        label = "valid-format" if keep else "random-format"
        make = null(lambda v=version, k=keep: _garbage(v, v, k))
        cases.append(Case(f"garbage-inside-finders-v{version}-{label}", make))
    garbage_photo = null(lambda: photograph(_garbage(4, 9, True), Shot(rotation=20, seed=9)).data)
    cases.append(Case("photo-of-garbage-inside-finders-v4", garbage_photo))
    # tens of thousands of finder look-alikes (once a stack overflow past ~125k of them)
    for side, module in ((1600, 1), (3400, 1), (1024, 2)):
        make = null(lambda side=side, module=module: finder_sheet(side, module))
        cases.append(Case(f"sheet-of-finder-patterns-{side}px-module{module}", make))
    return cases


def _inverted_cases() -> list[Case]:
    def inverted(pad: int) -> Callable[[], tuple[bytes, Expect]]:
        def build() -> tuple[bytes, Expect]:
            url = _scan_url("inverted")
            image = ImageOps.invert(Image.open(io.BytesIO(qr_png(url))).convert("L"))
            return _png(ImageOps.expand(image, pad, fill=255)), _server_expect(url)

        return build

    tilted = Shot(ink=200, paper=40, rotation=160, tilt=20, tilt_axis=45, blur=0.2, seed=1101)
    return [
        Case("inverted-whole-image", inverted(0)),
        Case("inverted-on-white", inverted(40)),
        _photo_case("inverted-photo", Shot(ink=230, paper=30, rotation=30, noise=4, seed=1100)),
        _photo_case("inverted-photo-tilted", tilted),
    ]


def _raw_code(fields: list[tuple[int, int]], version: int = 3, mask: int = 2) -> bytes:
    """A level-M code whose bit stream is written field by field ((value, bits) pairs), for
    segments the ``qrcode`` package does not write: ECI, structured append, FNC1. Placement,
    padding and Reed-Solomon are the package's."""
    stream = qrcode.util.BitBuffer()
    for value, width in fields:
        stream.put(value, width)
    blocks = rs_blocks(version, qrcode.constants.ERROR_CORRECT_M)
    capacity = sum(block.data_count for block in blocks) * 8
    for _ in range(min(4, capacity - len(stream))):  # terminator
        stream.put_bit(False)
    while len(stream) % 8:
        stream.put_bit(False)
    pad = 0
    while len(stream) < capacity:
        stream.put((0xEC, 0x11)[pad % 2], 8)
        pad += 1
    code = qrcode.QRCode(
        version=version, error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=mask
    )
    code.data_cache = qrcode.util.create_bytes(stream, blocks)
    code.makeImpl(False, mask)
    return _render(_matrix(code), 4)


def _bytes(data: bytes) -> list[tuple[int, int]]:
    return [(0b0100, 4), (len(data), 8), *((byte, 8) for byte in data)]


def _alphanumeric(text: str) -> list[tuple[int, int]]:
    values = [ALPHANUMERIC.index(c) for c in text]
    fields = [(0b0010, 4), (len(values), 9)]
    fields += [(values[i] * 45 + values[i + 1], 11) for i in range(0, len(values) - 1, 2)]
    return fields + ([(values[-1], 6)] if len(values) % 2 else [])


ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
ECI = 0b0111


def _segment_cases() -> list[Case]:
    """Bit streams written by hand: what each segment kind must read as (None: null)."""
    scan = b"http://h/miniapp/#/scan/ABC"
    streams: dict[str, tuple[list[tuple[int, int]], str | None]] = {
        # ISO-8859-1 byte for byte, not windows-1252 (which TextDecoder gives for the label)
        "bytes-0x80-0x9f-without-eci": (_bytes(b"A\x80\x93\x9fB"), "A\x80\x93\x9fB"),
        "eci3-latin1": ([(ECI, 4), (3, 8), *_bytes(b"x\x80y\xe9")], "x\x80y\xe9"),
        "eci26-utf8": ([(ECI, 4), (26, 8), *_bytes("网签".encode())], "网签"),
        "eci26-invalid-utf8": ([(ECI, 4), (26, 8), *_bytes(b"\xff\xfe")], None),
        "eci29-gb18030": ([(ECI, 4), (29, 8), *_bytes("签约".encode("gb18030"))], "签约"),
        "utf8-split-across-byte-segments": (
            [*_bytes("网".encode()[:2]), *_bytes("网".encode()[2:])],
            "网",
        ),
        # one symbol of a two-symbol message holds part of it: never the whole text
        "structured-append-1-of-2": ([(0b0011, 4), (0, 4), (1, 4), (0x55, 8), *_bytes(scan)], None),
        "structured-append-1-of-1": (
            [(0b0011, 4), (0, 4), (0, 4), (0x55, 8), *_bytes(scan)],
            scan.decode(),
        ),
        "gs1-percent-is-the-separator": ([(0b0101, 4), *_alphanumeric("01%A%%B")], "01\x1dA%B"),
        "alphanumeric-without-fnc1-keeps-percent": (_alphanumeric("01%A%%B"), "01%A%%B"),
        "kanji-unsupported": ([(0b1000, 4), (1, 8), (0x0AA, 13)], None),
        "mode-6-invalid": ([(0b0110, 4), (0, 20)], None),
        "byte-count-past-the-end": ([(0b0100, 4), (200, 8), (0x41, 8)], None),
        "numeric-1000-invalid": ([(0b0001, 4), (3, 10), (1000, 10)], None),
    }
    return [
        Case(name, lambda fields=fields, text=text: (_raw_code(fields), Expect(text)))
        for name, (fields, text) in streams.items()
    ]


GROUPS: dict[str, list[Case]] = {
    "clean": _clean_cases(),
    "server": _server_cases(),
    "photos": _photo_cases(),
    "hard": _hard_cases(),
    "limit": _limit_cases(),
    "damage": _damage_cases(),
    "refuse": _refuse_cases(),
    "inverted": _inverted_cases(),
    "segments": _segment_cases(),
}


# ---------------------------------------------------------------- the browser side


class Decoder:
    """Decodes every case of a group on first use: two threads make the images while the
    page decodes them, a few megabytes per ``page.evaluate``."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.outcomes: dict[str, dict[str, tuple[Expect, dict[str, Any]]]] = {}

    def decode(self, images: Iterable[bytes]) -> list[dict[str, Any]]:
        outcomes: list[dict[str, Any]] = []
        batch: list[str] = []
        for image in chain(images, [None]):
            if image is not None:
                batch.append(base64.b64encode(image).decode())
            if batch and (image is None or sum(map(len, batch)) > 8_000_000):
                outcomes += self.page.evaluate("images => window.decodeImages(images)", batch)
                batch = []
        return outcomes

    def outcome(self, group: str, case: Case) -> tuple[Expect, dict[str, Any]]:
        if group not in self.outcomes:
            cases = GROUPS[group]
            with ThreadPoolExecutor(max_workers=2) as pool:
                built = [pool.submit(c.build) for c in cases]
                expects = []

                def images() -> Iterator[bytes]:
                    for future in built:
                        image, expect = future.result()
                        expects.append(expect)
                        yield image

                results = self.decode(images())
            self.outcomes[group] = {
                c.name: (expect, result)
                for c, expect, result in zip(cases, expects, results, strict=True)
            }
        return self.outcomes[group][case.name]


@pytest.fixture(scope="module")
def decoder(chromium: Any) -> Any:
    if not DECODER.exists():
        pytest.fail(f"{DECODER.relative_to(ROOT)} is missing", pytrace=False)
    context = chromium.new_context()
    page = context.new_page()
    page.set_content("<!doctype html><title>QR decoder</title>")
    page.add_script_tag(path=str(DECODER))
    page.add_script_tag(content=PAGE_HELPER)
    assert page.evaluate(
        "typeof QrDecoder !== 'undefined' && typeof QrDecoder.decode === 'function'"
    ), "the decoder defines no global QrDecoder.decode"
    yield Decoder(page)
    context.close()


def _misread(name: str, expect: Expect, outcome: dict[str, Any]) -> str | None:
    """What is wrong with the decoder's answer for a case, or None when it is right."""
    where = (
        f"case {name!r} ({outcome.get('ms', 0):.0f} ms{'; ' + expect.note if expect.note else ''})"
    )
    if "error" in outcome:
        return f"{where}: decode threw: {outcome['error']}"
    if "bad" in outcome:
        return f"{where}: {outcome['bad']}"
    result = outcome["result"]
    if expect.text is None:
        return None if result is None else f"{where}: must be null, decoded {result!r}"
    if result is None:
        return None if expect.either else f"{where}: returned null; expected {expect.text!r}"
    if result["text"] != expect.text:
        return f"{where}: WRONG TEXT {result['text']!r} (expected {expect.text!r}); {result!r}"
    if expect.either:
        return None
    wanted = {"version": expect.version, "level": expect.level, "mask": expect.mask}
    wanted = {key: value for key, value in wanted.items() if value is not None}
    got = {key: result.get(key) for key in wanted}
    if got != wanted:
        return f"{where}: result {result!r}, expected {wanted}"
    corrected = result.get("corrected")
    if not isinstance(corrected, int) or corrected < 0:
        return f"{where}: bad corrected {corrected!r}"
    if expect.corrected is not None and corrected != expect.corrected:
        return f"{where}: corrected {corrected} codewords, {expect.corrected} were damaged; {result!r}"
    return None


def _ids(group: str) -> list[str]:
    return [case.name for case in GROUPS[group]]


@pytest.mark.parametrize("case", GROUPS["clean"], ids=_ids("clean"))
def test_clean_codes(decoder: Decoder, case: Case) -> None:
    problem = _misread(case.name, *decoder.outcome("clean", case))
    assert problem is None, problem


@pytest.mark.parametrize("case", GROUPS["server"], ids=_ids("server"))
def test_server_codes(decoder: Decoder, case: Case) -> None:
    problem = _misread(case.name, *decoder.outcome("server", case))
    assert problem is None, problem


@pytest.mark.parametrize("case", GROUPS["photos"], ids=_ids("photos"))
def test_photos(decoder: Decoder, case: Case) -> None:
    problem = _misread(case.name, *decoder.outcome("photos", case))
    assert problem is None, problem


@pytest.mark.parametrize("case", GROUPS["hard"], ids=_ids("hard"))
def test_hard_photos(decoder: Decoder, case: Case) -> None:
    problem = _misread(case.name, *decoder.outcome("hard", case))
    assert problem is None, problem


@pytest.mark.parametrize("case", GROUPS["limit"], ids=_ids("limit"))
def test_photos_past_the_limit_are_never_misread(decoder: Decoder, case: Case) -> None:
    problem = _misread(case.name, *decoder.outcome("limit", case))
    assert problem is None, problem


@pytest.mark.parametrize("case", GROUPS["damage"], ids=_ids("damage"))
def test_error_correction(decoder: Decoder, case: Case) -> None:
    problem = _misread(case.name, *decoder.outcome("damage", case))
    assert problem is None, problem


@pytest.mark.parametrize("case", GROUPS["refuse"], ids=_ids("refuse"))
def test_refusals(decoder: Decoder, case: Case) -> None:
    problem = _misread(case.name, *decoder.outcome("refuse", case))
    assert problem is None, problem


@pytest.mark.parametrize("case", GROUPS["inverted"], ids=_ids("inverted"))
def test_inverted(decoder: Decoder, case: Case) -> None:
    problem = _misread(case.name, *decoder.outcome("inverted", case))
    assert problem is None, problem


@pytest.mark.parametrize("case", GROUPS["segments"], ids=_ids("segments"))
def test_segments(decoder: Decoder, case: Case) -> None:
    problem = _misread(case.name, *decoder.outcome("segments", case))
    assert problem is None, problem


@pytest.mark.parametrize(
    "call",
    [
        "QrDecoder.decode(new Uint8ClampedArray(0), 0, 0)",
        "QrDecoder.decode(new Uint8ClampedArray(0), 0, 100)",
        "QrDecoder.decode(new Uint8ClampedArray(0), 100, 0)",
        "QrDecoder.decode(new Uint8ClampedArray(4), 1, 1)",
        "QrDecoder.decode(new Uint8ClampedArray([0, 0, 0, 255]), 1, 1)",
        "QrDecoder.decode(new Uint8ClampedArray(4 * 7 * 7), 7, 7)",
    ],
)
def test_degenerate_input(decoder: Decoder, call: str) -> None:
    outcome = decoder.page.evaluate(
        f"(() => {{ try {{ return {{result: {call}}}; }} "
        f"catch (e) {{ return {{error: String(e && e.stack || e)}}; }} }})()"
    )
    assert outcome == {"result": None}, f"{call}: {outcome}"


def test_photo_simulator_geometry() -> None:
    """The simulator itself (no browser): with the corners it reports, sampling every module
    centre of a photo gives back the code's matrix; so a photo case that fails is about the
    decoder, not a picture that holds no code."""
    url = _scan_url("geometry")
    code = qrcode.QRCode(error_correction=LEVELS["M"])
    code.add_data(url)
    code.make(fit=True)
    matrix, n = _matrix(code), len(code.modules)
    for shot in (
        Shot(),
        Shot(rotation=137, tilt=30, tilt_axis=70, seed=3),
        Shot(size=1600, coverage=0.8, rotation=45, tilt=35, seed=9),
        Shot(size=640, coverage=0.15, rotation=250, tilt=20, tilt_axis=200, jpeg=None, seed=4),
    ):
        photo = photograph(qr_png(url), shot)
        image = Image.open(io.BytesIO(photo.data)).convert("L")
        a, b, c, d, e, f, g, h = _perspective([(0, 0), (n, 0), (n, n), (0, n)], list(photo.corners))
        wrong = []
        for r in range(n):
            for col in range(n):
                x, y = col + 0.5, r + 0.5
                w = g * x + h * y + 1
                grey = image.getpixel((int((a * x + b * y + c) / w), int((d * x + e * y + f) / w)))
                if (grey < 128) != matrix[r][col]:
                    wrong.append((r, col))
        assert not wrong, f"{shot}: modules {wrong[:10]} do not match"
