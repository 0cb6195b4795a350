"""The QR code printed on a contract verifies offline against the root and the
platform's published certificates; forged codes and codes of other documents do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from signing.ca import PlatformCA
from signing.offline_qr import QR_PATH, QrPayload, make_token, qr_text, verify_token
from tests.signing.helpers import NOW, new_ca

HASH = "ab" * 32


@pytest.fixture
def ca(tmp_path: Path) -> PlatformCA:
    return new_ca(tmp_path / "ca")


def _published(ca: PlatformCA) -> list:
    return [ca.platform_certificate, *ca.issuing_certificates]


def _failed(result: object) -> list[str]:
    return [c.name for c in result.checks if not c.ok]  # type: ignore[attr-defined]


def test_a_genuine_code_verifies_offline(ca: PlatformCA) -> None:
    text = qr_text(
        "https://wq.example/", make_token(ca, QrPayload("YS202600000001", HASH, "signed", NOW))
    )
    assert text.startswith("https://wq.example" + QR_PATH) and len(text) < 320
    result = verify_token(text, ca.root_certificate, _published(ca), document_hash=HASH)
    assert result.ok, result.checks
    assert result.payload == QrPayload("YS202600000001", HASH, "signed", NOW)


def test_forged_and_misplaced_codes_are_refused(ca: PlatformCA, tmp_path: Path) -> None:
    token = make_token(ca, QrPayload("YS202600000001", HASH, "signed", NOW))
    head, tail = token.split(".")
    # Another contract number in the payload, the signature kept: the signature breaks.
    other = make_token(ca, QrPayload("YS202600000002", HASH, "signed", NOW)).split(".")[0]
    assert _failed(verify_token(f"{other}.{tail}", ca.root_certificate, _published(ca))) == [
        "signature"
    ]
    flipped = tail[:10] + ("A" if tail[10] != "A" else "B") + tail[11:]
    assert "signature" in _failed(
        verify_token(f"{head}.{flipped}", ca.root_certificate, _published(ca))
    )
    # A genuine code copied onto another contract's page.
    copied = verify_token(token, ca.root_certificate, _published(ca), document_hash="cd" * 32)
    assert _failed(copied) == ["document"]
    # A code made with another platform's key, checked against ours.
    stranger = new_ca(tmp_path / "other", org_name="Other Platform")
    forged = make_token(stranger, QrPayload("YS202600000001", HASH, "signed", NOW))
    assert _failed(verify_token(forged, ca.root_certificate, _published(ca))) == ["key"]
    assert "certificate" in _failed(verify_token(forged, ca.root_certificate, _published(stranger)))
    for garbage in ("", "hello", "a.b", "x" * 2000, f"{head}.{tail}.{tail}"):
        assert _failed(verify_token(garbage, ca.root_certificate, _published(ca))) == ["token"]


def test_the_command_checks_a_code_against_the_root(
    ca: PlatformCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization

    from api.cli import main

    root = tmp_path / "root.pem"
    root.write_bytes(ca.root_pem())
    certs = tmp_path / "certs.pem"
    certs.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in _published(ca)))
    text = qr_text("https://wq.example", make_token(ca, QrPayload("YS1", HASH, "signed", NOW)))
    common = ["--root", str(root), "--certs", str(certs)]
    assert main(["verify-qr", text, *common, "--document-hash", HASH]) == 0
    assert "VALID 有效" in capsys.readouterr().out
    assert main(["verify-qr", text, *common, "--document-hash", "cd" * 32]) == 1
    assert "another document" in capsys.readouterr().out
    assert main(["verify-qr", text[:-2] + "xx", *common]) == 1
