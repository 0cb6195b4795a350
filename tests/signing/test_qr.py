"""QR scenes and images."""

from __future__ import annotations

import re

import png
import pytest

from signing.qr import SCENE_MAX_LENGTH, is_valid_scene, new_scene, qr_png, qr_svg, validate_scene


def test_scenes_are_short_alphanumeric_and_unique() -> None:
    scenes = {new_scene() for _ in range(2000)}
    assert len(scenes) == 2000
    for scene in scenes:
        assert re.fullmatch(r"[0-9A-Za-z]{22}", scene)
        assert len(scene) <= SCENE_MAX_LENGTH
        assert validate_scene(scene) == scene


def test_scenes_carry_at_least_128_random_bits() -> None:
    # 22 symbols from a 62-letter alphabet: log2(62**22) ≈ 131 bits.
    assert 62**22 >= 2**128
    assert len(new_scene()) == 22


@pytest.mark.parametrize(
    ("scene", "reason"),
    [
        ("", "empty"),
        ("a" * 33, "longer than 32"),
        ("abc-def", "only ASCII letters and digits"),
        ("场景", "only ASCII letters and digits"),
        ("abc def", "only ASCII letters and digits"),
        (None, "must be a string"),
    ],
)
def test_malformed_scenes_are_refused_with_a_reason(scene: object, reason: str) -> None:
    assert not is_valid_scene(scene)
    with pytest.raises(ValueError, match=reason):
        validate_scene(scene)


def test_png_is_a_square_black_and_white_image() -> None:
    data = qr_png("https://wangqian.example.cn/s/Ab3dEf9h", box_size=4, border=4)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, rows, _ = png.Reader(bytes=data).read()
    assert width == height
    assert width % 4 == 0
    pixels = {value for row in rows for value in row}
    assert pixels <= {0, 1, 255}
    assert len(pixels) == 2


def test_svg_is_a_single_path_document() -> None:
    svg = qr_svg("https://wangqian.example.cn/s/Ab3dEf9h")
    assert svg.startswith("<svg")
    assert svg.count("<path") == 1
    assert "</svg>" in svg


def test_empty_url_is_refused() -> None:
    with pytest.raises(ValueError, match="URL"):
        qr_png("")
