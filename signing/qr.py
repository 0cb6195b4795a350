"""QR scene strings and QR code images for contract orders.

A *scene* is the short random token a QR code carries (WeChat mini program codes allow at
most 32 visible characters); the server maps it to an order. Scenes are 22 characters of
[0-9A-Za-z] drawn uniformly from ``secrets`` (62**22 ≈ 2**131, so ≥128 bits), which makes
them unguessable: knowing one order's scene says nothing about another's.

Images are rendered with the ``qrcode`` package without Pillow: PNG through PyPNG and SVG
as a single path, at error-correction level M (15 %), enough for a code printed on paper
or shown on a sales-office screen.
"""

from __future__ import annotations

import io
import re
import secrets

import qrcode
import qrcode.constants
import qrcode.image.pure
import qrcode.image.svg

SCENE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SCENE_LENGTH = 22
SCENE_MAX_LENGTH = 32
_SCENE = re.compile(rf"[0-9A-Za-z]{{1,{SCENE_MAX_LENGTH}}}")
_MAX_URL_LENGTH = 2048


def new_scene() -> str:
    """A fresh random scene string: 22 characters of [0-9A-Za-z], ≥128 random bits."""
    return "".join(secrets.choice(SCENE_ALPHABET) for _ in range(SCENE_LENGTH))


def is_valid_scene(scene: object) -> bool:
    """Whether ``scene`` has the shape of a scene (1-32 ASCII letters or digits)."""
    return isinstance(scene, str) and _SCENE.fullmatch(scene) is not None


def validate_scene(scene: object) -> str:
    """Return ``scene`` unchanged if well-formed, else raise ValueError saying why."""
    if not isinstance(scene, str):
        raise ValueError("scene must be a string")
    if not scene:
        raise ValueError("scene is empty")
    if len(scene) > SCENE_MAX_LENGTH:
        raise ValueError(f"scene is longer than {SCENE_MAX_LENGTH} characters")
    if not is_valid_scene(scene):
        raise ValueError("scene may contain only ASCII letters and digits")
    return scene


def _code(url: str, box_size: int, border: int, factory: type) -> qrcode.QRCode:
    if not isinstance(url, str) or not url:
        raise ValueError("the QR code needs a non-empty URL")
    if len(url) > _MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {_MAX_URL_LENGTH} characters")
    if not 1 <= box_size <= 64 or not 0 <= border <= 16:
        raise ValueError("box_size must be 1-64 and border 0-16")
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=box_size,
        border=border,
        image_factory=factory,
    )
    code.add_data(url)
    code.make(fit=True)
    return code


def qr_png(url: str, *, box_size: int = 8, border: int = 4) -> bytes:
    """PNG bytes of a QR code for ``url`` (``border`` is the quiet zone, in modules)."""
    image = _code(url, box_size, border, qrcode.image.pure.PyPNGImage).make_image()
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


def qr_svg(url: str, *, box_size: int = 8, border: int = 4) -> str:
    """SVG text of a QR code for ``url``, one ``<path>``, scalable without blur."""
    image = _code(url, box_size, border, qrcode.image.svg.SvgPathImage).make_image()
    return image.to_string(encoding="unicode")
