"""A phone-photo simulator for QR codes, with Pillow: a clean code goes in, a "photo" comes out.

``photograph(png, Shot(...))`` prints the code (a clean PNG, e.g. from ``signing.qr.qr_png``)
on a card, lays it on a cluttered desk and takes a 4:3 picture of it. Every knob of ``Shot``:

- ``size``: the long side of the frame in pixels (the short side is 3/4 of it);
  ``portrait`` makes the frame taller than wide.
- ``coverage``: how much of the frame the code fills: the area of the symbol (without its
  quiet zone) over the area of the largest square in the frame (short side squared), so
  0.15 is a code seen from afar and 0.8 one that fills the screen. If the rotated, tilted
  symbol (plus a 2-module margin) would not fit in the frame it is shrunk until it does;
  ``Photo.coverage`` is what was used.
- ``rotation``: degrees, anticlockwise, the card turned in its own plane (any angle).
- ``tilt``, ``tilt_axis``: the card turned away from the sensor plane by ``tilt`` degrees
  (0-35 is what a hand does) about an axis in the image at ``tilt_axis`` degrees, seen by a
  camera of a phone's field of view (about 65°), so the far side looks smaller.
- ``blur``: Gaussian blur (focus, shake), its sigma in apparent module widths: 0.3 is soft;
  from 0.5 on, a lone module's centre is greyer than the middle, unreadable by any decoder
  that reads module centres.
- ``light``, ``light_angle``: uneven lighting, a brightness gradient across the frame from
  ``light`` (0-1, its darkest end) to full, towards ``light_angle`` degrees.
- ``shadow``: a soft shadow (a hand, the phone) over part of the code: 0 none, 0.5 halves
  the light there; ``shadow_edge`` is the softness of its edge in module widths.
- ``noise``: sensor noise, the standard deviation in grey levels (0-255).
- ``ink``, ``paper``: grey levels of dark modules and of the card; low contrast is e.g.
  ink 120 on paper 190; ink lighter than paper prints an inverted code.
- ``jpeg``: JPEG quality (50-85 is what phones and messengers send); ``None`` gives PNG.
- ``seed``: everything random (the desk, the clutter, where the card lies) comes from
  ``random.Random(seed)``, so a shot is the same on every run.

``photograph(None, shot)`` takes the same picture with no code in it.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from statistics import NormalDist

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps


@dataclass(frozen=True)
class Shot:
    size: int = 1000
    portrait: bool = False
    coverage: float = 0.35
    rotation: float = 0.0
    tilt: float = 0.0
    tilt_axis: float = 0.0
    blur: float = 0.0
    light: float = 1.0
    light_angle: float = 0.0
    shadow: float = 0.0
    shadow_edge: float = 2.0
    noise: float = 0.0
    ink: int = 25
    paper: int = 235
    jpeg: int | None = 80
    seed: int = 0


@dataclass(frozen=True)
class Photo:
    data: bytes  # encoded image (JPEG or PNG)
    width: int
    height: int
    coverage: float  # the coverage used (see Shot.coverage); 0 without a code
    module_px: float  # apparent module width in pixels (mean over the symbol); 0 without a code
    corners: tuple = ()  # the symbol's top-left, top-right, bottom-right, bottom-left corners


def photograph(png: bytes | None, shot: Shot) -> Photo:
    rng = random.Random(shot.seed)
    width, height = shot.size, round(shot.size * 3 / 4)
    if shot.portrait:
        width, height = height, width
    frame = _desk(width, height, rng)
    coverage, module_px, corners = 0.0, 0.0, ()
    if png is not None:
        frame, coverage, module_px, corners = _place_card(frame, png, shot, rng)
    frame = ImageChops.multiply(frame, _gradient(width, height, shot.light, shot.light_angle))
    if shot.shadow > 0:
        frame = ImageChops.multiply(frame, _shadow(width, height, shot, module_px, rng))
    if shot.blur > 0:
        frame = frame.filter(ImageFilter.GaussianBlur(shot.blur * max(module_px, 1.0)))
    if shot.noise > 0:
        frame = ImageChops.add(frame, _noise(width, height, shot.noise, rng), 1.0, -128)
    out = io.BytesIO()
    if shot.jpeg is None:
        frame.save(out, "PNG")
    else:
        frame.save(out, "JPEG", quality=shot.jpeg)
    return Photo(out.getvalue(), width, height, coverage, module_px, corners)


def _desk(width: int, height: int, rng: random.Random) -> Image.Image:
    """A desk-coloured gradient with wood grain, objects, and a printed page of "text"."""
    near = tuple(rng.randint(120, 190) - d for d in (0, 30, 60))
    far = tuple(c - rng.randint(20, 60) for c in near)
    frame = Image.composite(
        Image.new("RGB", (width, height), near),
        Image.new("RGB", (width, height), far),
        _gradient(width, height, 0.0, rng.uniform(0, 360)).convert("L"),
    )
    draw = ImageDraw.Draw(frame)
    for _ in range(40):  # wood grain
        y = rng.uniform(0, height)
        grain = tuple(c - rng.randint(5, 25) for c in near)
        draw.line([(0, y), (width, y + rng.uniform(-40, 40))], fill=grain, width=rng.randint(1, 3))
    for _ in range(rng.randint(5, 10)):  # pens, mugs, phones: random shapes in random colours
        x, y = rng.uniform(-0.1, 1) * width, rng.uniform(-0.1, 1) * height
        w, h = rng.uniform(0.03, 0.25) * width, rng.uniform(0.03, 0.25) * height
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x, y, x + w, y + h], fill=colour, outline=(20, 20, 20), width=rng.randint(0, 4))
    # a printed page lying askew, with lines of word-like dark marks
    page = Image.new("RGB", (width // 2, height // 2), (238, 236, 230))
    marks = ImageDraw.Draw(page)
    line_h = max(4, height // 60)
    for y in range(line_h * 2, page.height - line_h * 2, line_h * 2):
        x = line_h * 2
        while x < page.width - line_h * 4:
            word = rng.randint(line_h, line_h * 6)
            marks.rectangle([x, y, x + word, y + line_h], fill=(30, 30, 35))
            x += word + line_h
    page = page.rotate(rng.uniform(-30, 30), expand=True, fillcolor=(0, 0, 0))
    mask = page.convert("L").point(lambda v: 255 if v > 0 else 0)
    frame.paste(
        page, (rng.randint(-width // 4, width // 2), rng.randint(-height // 4, height // 2)), mask
    )
    return frame


def _place_card(
    frame: Image.Image, png: bytes, shot: Shot, rng: random.Random
) -> tuple[Image.Image, float, float, tuple]:
    code = Image.open(io.BytesIO(png)).convert("L")
    x0, y0, x1, y1 = ImageOps.invert(code).getbbox()
    run = next(x for x in range(x0, x1) if code.getpixel((x, y0)) > 127) - x0
    box = run / 7  # the finder pattern's top row is 7 dark modules
    modules = (x1 - x0) / box
    pad = round(rng.uniform(0.5, 3) * box)  # paper beyond the quiet zone
    card = ImageOps.expand(code, pad, fill=255)
    card = card.point(lambda v: round(shot.ink + (shot.paper - shot.ink) * v / 255))
    cx, cy, side = (x0 + x1) / 2 + pad, (y0 + y1) / 2 + pad, x1 - x0
    width, height = frame.size
    focal = 0.8 * max(width, height)  # a phone's main camera: about 65° across the long side
    scale = math.sqrt(shot.coverage) * min(width, height) / side

    def project(x: float, y: float) -> tuple[float, float]:
        """Card pixel -> frame pixel, before the card is moved into place."""
        r, a, t = math.radians(shot.rotation), math.radians(shot.tilt_axis), math.radians(shot.tilt)
        u, v = (x - cx) * scale, (y - cy) * scale
        u, v = u * math.cos(r) + v * math.sin(r), -u * math.sin(r) + v * math.cos(r)
        along = u * math.cos(a) + v * math.sin(a)  # rotate about the axis (Rodrigues)
        across = -u * math.sin(a) + v * math.cos(a)
        depth = focal + across * math.sin(t)
        across *= math.cos(t)
        u = along * math.cos(a) - across * math.sin(a)
        v = along * math.sin(a) + across * math.cos(a)
        return focal * u / depth, focal * v / depth

    edge = side / 2 + 2 * box  # the symbol plus a 2-module margin must be in the frame
    keep = [project(cx + dx * edge, cy + dy * edge) for dx in (-1, 1) for dy in (-1, 1)]
    margin = 0.01 * min(width, height)
    span_x = max(p[0] for p in keep) - min(p[0] for p in keep)
    span_y = max(p[1] for p in keep) - min(p[1] for p in keep)
    shrink = min(1.0, (width - 2 * margin) / span_x, (height - 2 * margin) / span_y)
    low_x, low_y = min(p[0] for p in keep) * shrink, min(p[1] for p in keep) * shrink
    shift_x = rng.uniform(margin - low_x, width - margin - low_x - span_x * shrink)
    shift_y = rng.uniform(margin - low_y, height - margin - low_y - span_y * shrink)
    source = [(0, 0), (card.width, 0), (card.width, card.height), (0, card.height)]
    symbol = [
        (cx + sx * side / 2, cy + sy * side / 2) for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]

    def place(points: list) -> list:
        return [
            (x * shrink + shift_x, y * shrink + shift_y) for x, y in (project(*p) for p in points)
        ]

    target, corners = place(source), place(symbol)
    if scale * shrink < 1:  # downscale first with a proper filter, so nothing aliases
        factor = scale * shrink
        card = card.resize((round(card.width * factor), round(card.height * factor)), Image.LANCZOS)
        source = [(x * factor, y * factor) for x, y in source]
    coefficients = _perspective(target, source)  # alpha: the desk shows around the card
    warped = card.convert("RGBA").transform(
        (width, height), Image.Transform.PERSPECTIVE, coefficients, Image.BICUBIC
    )
    frame = Image.alpha_composite(frame.convert("RGBA"), warped).convert("RGB")
    return frame, shot.coverage * shrink**2, side * scale * shrink / modules, tuple(corners)


def _perspective(target: list, source: list) -> list[float]:
    """Coefficients for Image.transform: they map each target (frame) corner to its source."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y, u])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y, v])
    for col in range(8):  # Gauss-Jordan elimination with partial pivoting
        pivot = max(range(col, 8), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(8):
            if r != col:
                k = rows[r][col] / rows[col][col]
                rows[r] = [a - k * b for a, b in zip(rows[r], rows[col], strict=True)]
    return [rows[i][8] / rows[i][i] for i in range(8)]


def _gradient(width: int, height: int, low: float, angle: float) -> Image.Image:
    """RGB multiplier: brightness from ``low`` to 1 across the frame, towards ``angle``."""
    ramp = Image.linear_gradient("L").rotate(angle + 90, Image.BILINEAR)
    ramp = ramp.crop((38, 38, 218, 218)).resize((width, height), Image.BILINEAR)
    ramp = ramp.point(lambda v: round(255 * (low + (1 - low) * v / 255)))
    return Image.merge("RGB", [ramp] * 3)


def _shadow(
    width: int, height: int, shot: Shot, module_px: float, rng: random.Random
) -> Image.Image:
    """RGB multiplier: a shadow over a half plane whose edge crosses near the frame's middle."""
    mask = Image.new("L", (width, height), 255)
    angle, far = rng.uniform(0, 2 * math.pi), 2 * (width + height)
    x, y = (0.5 + rng.uniform(-0.1, 0.1)) * width, (0.5 + rng.uniform(-0.1, 0.1)) * height
    dx, dy = math.cos(angle) * far, math.sin(angle) * far
    sides = ((-1, 0), (1, 0), (1, 1), (-1, 1))  # along the edge, then into the shadow
    corners = [(x + a * dx - b * dy, y + a * dy + b * dx) for a, b in sides]
    ImageDraw.Draw(mask).polygon(corners, fill=round(255 * (1 - shot.shadow)))
    mask = mask.filter(ImageFilter.GaussianBlur(shot.shadow_edge * max(module_px, 1.0)))
    return Image.merge("RGB", [mask] * 3)


def _noise(width: int, height: int, sigma: float, rng: random.Random) -> Image.Image:
    """RGB noise around grey 128: random bytes through the inverse of the normal CDF."""
    gauss = NormalDist(128, sigma)
    table = [min(255, max(0, round(gauss.inv_cdf((i + 0.5) / 256)))) for i in range(256)]
    planes = [Image.frombytes("L", (width, height), rng.randbytes(width * height)) for _ in "RGB"]
    return Image.merge("RGB", [plane.point(table) for plane in planes])


def everyday_shot(seed: int) -> Shot:
    """A shot drawn at random from what a phone sees: any size, rotation and coverage, a tilt
    up to 30°, blur up to 0.4 module, dim or uneven light, shadow, noise, JPEG."""
    rng = random.Random(seed)
    return Shot(
        size=rng.choice((640, 800, 1000, 1280, 1600)),
        portrait=rng.random() < 0.3,
        coverage=rng.uniform(0.15, 0.8),
        rotation=rng.uniform(0, 360),
        tilt=rng.uniform(0, 30),
        tilt_axis=rng.uniform(0, 180),
        blur=rng.uniform(0, 0.4),
        light=rng.uniform(0.5, 1),
        light_angle=rng.uniform(0, 360),
        shadow=rng.choice((0, 0, 0.3, 0.5)),
        noise=rng.uniform(0, 12),
        ink=rng.randint(10, 90),
        paper=rng.randint(190, 250),
        jpeg=rng.randint(50, 85),
        seed=seed,
    )


def finder_sheet(side: int, module: int) -> bytes:
    """PNG of a square sheet tiled with finder patterns (7x7 modules, 2-module gaps) and
    nothing else: tens of thousands of look-alikes, a decoder's worst case."""
    finder = Image.new("L", (9, 9), 255)
    finder.paste(0, (0, 0, 7, 7))
    finder.paste(255, (1, 1, 6, 6))
    finder.paste(0, (2, 2, 5, 5))
    tile = finder.resize((9 * module, 9 * module), Image.NEAREST)
    sheet = Image.new("L", (side, side), 255)
    for y in range(0, side, tile.height):
        for x in range(0, side, tile.width):
            sheet.paste(tile, (x, y))
    out = io.BytesIO()
    sheet.save(out, "PNG")
    return out.getvalue()
