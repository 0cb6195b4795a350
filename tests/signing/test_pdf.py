"""The signed contract PDF at the library level: every signature valid for pyHanko and
pdfsig with the root trusted, the document time-stamp over the whole file, and a changed
byte anywhere caught."""

from __future__ import annotations

import asyncio
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest

from signing.ca import PlatformCA
from signing.pdf import (
    add_document_timestamp,
    attached_document,
    render_contract,
    verify_pdf_sync,
)
from signing.pdf_fonts import FontError, PdfFont, load_font
from signing.pii import mask_name
from signing.seal_image import signature_mark
from signing.tsa import TimeStampAuthority, TransportTimeStamper
from tests.pdf_tools import pdf_text, pdfsig_report, poppler
from tests.signing.helpers import NOW, contract_document, finish, finished_pdf, new_ca

FONT = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"


@pytest.fixture(scope="module")
def font() -> PdfFont:
    return load_font(FONT)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, font: PdfFont) -> tuple[PlatformCA, bytes]:
    ca = new_ca(tmp_path_factory.mktemp("ca"))
    return ca, asyncio.run(finished_pdf(ca, contract_document(), font, NOW))


def test_every_signature_and_the_time_stamp_hold(made: tuple[PlatformCA, bytes]) -> None:
    ca, pdf = made
    report = verify_pdf_sync(pdf, ca.root_certificate, now=NOW + timedelta(hours=1))
    assert report.ok, [c for c in report.checks if not c.ok]
    assert [s.field for s in report.signatures][:4] == ["buyer-1", "seller-1", "seal", "platform"]
    last = report.signatures[-1]
    assert last.kind == "timestamp" and last.whole_file and last.signer.endswith("TSA G1")
    assert all(s.under_root for s in report.signatures)
    document = attached_document(pdf)
    assert document is not None and document == contract_document()


async def test_the_event_loop_keeps_its_turns_while_revisions_are_signed(
    font: PdfFont, tmp_path: Path
) -> None:
    """pyHanko's signing runs in a thread of its own (its time-stamp requests come back to
    this loop): requests waiting on the loop go on meanwhile instead of after it."""
    ca = new_ca(tmp_path)
    pdf = render_contract(contract_document(), font, NOW)
    signing = asyncio.ensure_future(finish(ca, contract_document(), font, NOW, pdf))
    turns = 0
    while not signing.done():
        turns += 1
        await asyncio.sleep(0)
    finished = signing.result()
    # Three revisions (seal, platform, document time-stamp), each with a time-stamp asked
    # of the authority on this loop: on the loop itself they left it a handful of turns.
    assert turns > 200
    report = verify_pdf_sync(finished, ca.root_certificate, now=NOW + timedelta(hours=1))
    assert [s.field for s in report.signatures][:2] == ["seal", "platform"]
    assert all(s.ok for s in report.signatures)


async def test_signings_overlap_their_time_stamp_waits(font: PdfFont, tmp_path: Path) -> None:
    """The signing thread runs one loop: a revision waiting for its time-stamp (a remote
    authority answers in tens of milliseconds) lets the next one go on meanwhile."""
    ca = new_ca(tmp_path)
    pdf = render_contract(contract_document(), font, NOW)
    authority = TimeStampAuthority.of(ca).transport(lambda: NOW)
    in_flight, peak, both = 0, 0, asyncio.Event()

    async def slow_authority(request: bytes) -> bytes:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 2:
            both.set()
        try:  # each request waits (at most 5 s) until another is asked too
            await asyncio.wait_for(both.wait(), 5)
        except TimeoutError:
            pass
        finally:
            in_flight -= 1
        return await authority(request)

    stamper = TransportTimeStamper(slow_authority)
    stamped = await asyncio.gather(*(add_document_timestamp(pdf, stamper) for _ in range(2)))
    assert peak == 2
    for each in stamped:
        report = verify_pdf_sync(each, ca.root_certificate, now=NOW + timedelta(hours=1))
        assert report.signatures[-1].kind == "timestamp" and report.signatures[-1].ok


def test_another_root_trusts_none_of_it(made: tuple[PlatformCA, bytes], tmp_path: Path) -> None:
    _, pdf = made
    stranger = new_ca(tmp_path / "other", org_name="Other Platform")
    report = verify_pdf_sync(pdf, stranger.root_certificate, now=NOW + timedelta(hours=1))
    assert not report.ok
    assert not any(s.ok or s.under_root for s in report.signatures)


@pytest.mark.skipif(not poppler(), reason="poppler-utils and libnss3-tools are not installed")
def test_pdfsig_trusts_every_signature_and_lists_the_time_stamp(
    made: tuple[PlatformCA, bytes], tmp_path: Path
) -> None:
    ca, pdf = made
    found = pdfsig_report(pdf, ca.root_certificate, tmp_path)
    # pdfsig lists the signatures in the form's order: the seller's side first.
    assert [entry["field"] for entry in found[:4]] == ["seller-1", "seal", "buyer-1", "platform"]
    for entry in found[:4]:
        assert entry["validation"] == "Signature is Valid.", entry
        assert entry["certificate"] == "Certificate is Trusted.", entry
        assert entry["type"] == "ETSI.CAdES.detached"
    # poppler 22 lists the RFC 3161 document time-stamp but cannot validate that type;
    # pyHanko does (test above).
    assert len(found) == 5 and found[4]["field"].startswith("Timestamp")
    text = pdf_text(pdf, tmp_path)
    assert "商品房买卖合同（预售）" in text and "No. YS202600000001" in text
    assert re.search(r"第\s*1\s*页\s*共\s*\d+\s*页", text)


def _flipped(pdf: bytes, position: int) -> bytes:
    return pdf[:position] + bytes([pdf[position] ^ 0x01]) + pdf[position + 1 :]


def test_a_flipped_byte_anywhere_is_caught(made: tuple[PlatformCA, bytes]) -> None:
    ca, pdf = made
    later = NOW + timedelta(hours=1)
    positions = set(random.Random(15).sample(range(len(pdf)), 24))
    positions |= {0, 9, len(pdf) // 2, len(pdf) - 2, len(pdf) - 1}
    # Inside every signature's /Contents: the DER, and the zero padding after it.
    for match in re.finditer(rb"/Contents <([0-9a-f]+)>", pdf):
        start = match.start(1)
        positions |= {start + 10, start + 200, match.end(1) - 4}
    for position in sorted(positions):
        report = verify_pdf_sync(_flipped(pdf, position), ca.root_certificate, now=later)
        assert not report.ok, f"a flip at byte {position} of {len(pdf)} went unnoticed"


def test_a_missing_font_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FontError, match="does not exist: install Debian's fonts-noto-cjk"):
        load_font(tmp_path / "nope.ttc")
    (tmp_path / "latin.ttf").write_bytes(b"not a font")
    with pytest.raises(FontError, match="not a readable OpenType"):
        load_font(tmp_path / "latin.ttf")


def test_the_simplified_chinese_face_of_the_collection_is_chosen(font: PdfFont) -> None:
    assert font.family.endswith(" SC") and font.index == 2


def test_the_command_verifies_a_pdf_offline(
    made: tuple[PlatformCA, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli import main

    ca, pdf = made
    root = tmp_path / "root.pem"
    root.write_bytes(ca.root_pem())
    good = tmp_path / "contract.pdf"
    good.write_bytes(pdf)
    assert main(["verify-pdf", str(good), "--root", str(root)]) == 0
    assert "VALID 有效" in capsys.readouterr().out
    bad = tmp_path / "changed.pdf"
    bad.write_bytes(pdf + b"%%EOF\n")
    assert main(["verify-pdf", str(bad), "--root", str(root)]) == 1
    assert "INVALID" in capsys.readouterr().out


def test_a_signature_mark_is_drawn_once_per_name_and_signing_leaves_it_as_drawn(
    made: tuple[PlatformCA, bytes], font: PdfFont
) -> None:
    """The mark of a masked name is shared by every act that signs with it (the finished
    PDF above signed with it): each act reads it, none changes it."""
    for party in contract_document().terms()["parties"][:2]:  # the buyer and the seller
        name = mask_name(party["name"])
        shared = signature_mark(name, font)
        assert signature_mark(name, font) is shared
        assert shared.tobytes() == signature_mark.__wrapped__(name, font).tobytes()
