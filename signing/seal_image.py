"""The pictures inside signature boxes: the company's contract seal (合同专用章) and a
person's signature mark, drawn with Pillow in the contract's CJK font.

They are what a reader sees; what a reader can check is the PDF signature behind them
(:mod:`signing.pdf`). The seal follows the look of a Chinese company seal: a red ring,
the company name around the upper arc, a five-pointed star in the middle and
"合同专用章" below it. Drawn at 4x and scaled down, so edges stay smooth.
"""

from __future__ import annotations

import functools
import math

from PIL import Image, ImageDraw, ImageFont

from signing.pdf_fonts import PdfFont

SEAL_RED = (200, 20, 30, 235)
INK_BLUE = (20, 40, 140, 255)
_SIZE = 1200  # drawing size of the seal, pixels
_OUT = 480


@functools.lru_cache(maxsize=32)
def _font(font: PdfFont, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font.path), size, index=font.index)


def _star(draw: ImageDraw.ImageDraw, centre: float, radius: float) -> None:
    points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.382
        angle = math.radians(-90 + 36 * k)
        points.append((centre + r * math.cos(angle), centre + r * math.sin(angle)))
    draw.polygon(points, fill=SEAL_RED)


def _glyph(char: str, font: ImageFont.FreeTypeFont, angle: float) -> Image.Image:
    _, _, right, bottom = font.getbbox(char)
    size = max(right, bottom) + 8
    tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((size / 2, size / 2), char, font=font, fill=SEAL_RED, anchor="mm")
    return tile.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


@functools.lru_cache(maxsize=64)
def seal_image(company: str, font: PdfFont) -> Image.Image:
    """A round contract seal for ``company`` (RGBA, transparent outside the ink). Drawn
    once per company and process; callers only read it."""
    image = Image.new("RGBA", (_SIZE, _SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    centre = _SIZE / 2
    ring = _SIZE * 0.47
    draw.ellipse(
        (centre - ring, centre - ring, centre + ring, centre + ring),
        outline=SEAL_RED,
        width=round(_SIZE * 0.035),
    )
    _star(draw, centre, _SIZE * 0.14)
    name = company.strip() or "—"
    arc = math.radians(min(220.0, 40.0 + 16.0 * len(name)))  # wider for longer names
    text_radius = ring - _SIZE * 0.12
    # As large as fits: the arc shared by the characters, a little air between them.
    glyph_size = round(min(_SIZE * 0.13, 0.88 * text_radius * arc / max(len(name), 2)))
    name_font = _font(font, glyph_size)
    for position, char in enumerate(name):
        share = 0.5 if len(name) == 1 else position / (len(name) - 1)
        angle = -math.pi / 2 - arc / 2 + arc * share  # from the left round the top
        x = centre + text_radius * math.cos(angle)
        y = centre + text_radius * math.sin(angle)
        tile = _glyph(char, name_font, -math.degrees(angle) - 90)
        image.alpha_composite(tile, (round(x - tile.width / 2), round(y - tile.height / 2)))
    label_font = _font(font, round(_SIZE * 0.1))
    draw.text(
        (centre, centre + _SIZE * 0.27), "合同专用章", font=label_font, fill=SEAL_RED, anchor="mm"
    )
    return image.resize((_OUT, _OUT), Image.Resampling.LANCZOS)


@functools.lru_cache(maxsize=256)
def signature_mark(name: str, font: PdfFont) -> Image.Image:
    """A person's mark for a signature box: the (masked) name and "电子签名", in ink.
    Drawn once per name and process (5 ms of CPU on the request loop, for every signing
    act; masked names repeat: a family name and stars); callers only read it."""
    width, height = 1080, 240
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.text((24, height / 2), name, font=_font(font, 150), fill=INK_BLUE, anchor="lm")
    draw.text(
        (width - 24, height / 2), "电子签名", font=_font(font, 72), fill=INK_BLUE, anchor="rm"
    )
    return image.resize((width // 3, height // 3), Image.Resampling.LANCZOS)
