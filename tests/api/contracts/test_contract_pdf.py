"""The contract a person reads, signs and keeps, over HTTP: the whole text to read (and
the record that it was opened), the signed PDF with every signature and the seal, the
time-stamps in the evidence bundle, the QR code, and public verify-pdf."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import signal
import subprocess
import uuid
from datetime import timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import pdfs as pdfs_module
from api.contracts.models import ContractCounter, ContractDocument, ContractOrder
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.settings import Settings
from signing.certificates import load_root_certificate
from signing.evidence_verify import verify_bundle
from signing.offline_qr import QR_PATH
from signing.pdf import verify_pdf_sync
from signing.pdf_fonts import cache_name, load_font
from signing.tsa import TimestampError
from tests.api.contracts.helpers import (
    LI,
    WANG,
    ZHANG,
    Demo,
    create_issued,
    demo,
    face_verified,
    problem,
    scan,
    seal,
    sign,
)
from tests.api.identity.helpers import bearer
from tests.pdf_tools import pdf_text, pdfsig_report, poppler


async def _signed_contract(
    client: httpx.AsyncClient, d: Demo, clock: MovableClock, room: str = "301"
) -> dict[str, Any]:
    """Two buyers open the whole text and sign; the developer seals."""
    issued = await create_issued(client, d, room, ZHANG, LI)
    order_id = issued["order"]["id"]
    for person in (ZHANG, LI):
        token = await face_verified(client, person)
        scanned = (await scan(client, token, issued["scene"])).json()
        text = scanned["document"]["text"]
        assert text["title"] == "商品房买卖合同（预售）"
        assert [c["heading"][:3] for c in text["chapters"]][:2] == ["第一章", "第二章"]
        opened = await client.post(
            f"/api/v1/contracts/{order_id}/document/opened",
            json={"document_hash": scanned["document_hash"]},
            headers=bearer(token),
        )
        assert opened.status_code == 200, opened.text
        clock.advance(timedelta(seconds=30))
        signed, _ = await sign(client, token, order_id, person.phone)
        assert signed.status_code == 200, signed.text
    sealed = await seal(client, d, order_id, clock)
    assert sealed.status_code == 200, sealed.text
    return {"order_id": order_id, "number": sealed.json()["contract_number"], "zhang": token}


async def _as_agent(client: httpx.AsyncClient, d: Demo, order_id: str, what: str) -> Any:
    answer = await client.get(f"/api/v1/contracts/{order_id}/{what}", headers=bearer(d.agent))
    assert answer.status_code == 200, answer.text
    return answer


async def test_the_signed_pdf_carries_the_text_every_signature_and_a_timestamp(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    settings: Settings,
    tmp_path: Path,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    contract = await _signed_contract(mock_client, d, clock)
    order_id, number = contract["order_id"], contract["number"]

    answer = await mock_client.get(f"/api/v1/contracts/{order_id}/pdf", headers=bearer(d.agent))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert f'filename="{number}.pdf"' in answer.headers["content-disposition"]
    pdf = answer.content
    same = await mock_client.get(
        f"/api/v1/contracts/{order_id}/pdf", headers=bearer(contract["zhang"])
    )
    assert same.content == pdf  # the buyer gets the very same file

    root = load_root_certificate((settings.data_dir / "keystore" / "root.crt.pem").read_bytes())
    report = verify_pdf_sync(pdf, root, now=clock.now())
    assert report.ok, [c for c in report.checks if not c.ok]
    assert [(s.field, s.kind) for s in report.signatures] == [
        ("buyer-1", "signature"),
        ("buyer-2", "signature"),
        ("seal", "signature"),
        ("platform", "signature"),
        (report.signatures[-1].field, "timestamp"),
    ]
    assert report.document is not None
    order = (await mock_client.get(f"/api/v1/contracts/{order_id}", headers=bearer(d.agent))).json()
    assert report.document.document_hash == order["document_hash"]
    # Typeset from the font's base face, cut into the data directory by the typesetter.
    assert [p.name for p in (settings.data_dir / "cache" / "fonts").iterdir()] == [
        cache_name(load_font(settings.pdf_font))
    ]

    if poppler():
        text = pdf_text(pdf, tmp_path)
        assert number in text
        assert "张*" in text and "李*" in text and ZHANG.name not in text
        assert "人民币贰佰万元整" in text and "2,000,000.00" in text
        sig = pdfsig_report(pdf, root, tmp_path)
        fields = ["seal", "buyer-1", "buyer-2", "platform", sig[-1]["field"]]  # form order
        assert [s["field"] for s in sig] == fields
        for entry in sig[:-1]:
            assert entry["validation"] == "Signature is Valid.", entry
            assert entry["certificate"] == "Certificate is Trusted.", entry
        assert sig[-1]["field"].startswith("Timestamp")  # the document time-stamp


async def _stored_pdf(database: Database, order_id: str) -> bytes | None:
    async with database.reader() as session:
        return await session.scalar(
            select(ContractDocument.pdf).where(ContractDocument.order_id == uuid.UUID(order_id))
        )


def _periodic_job(app: Any, name: str) -> Any:
    """One of the worker loop's periodic jobs, to run by hand."""
    return next(job for job in app.state.outbox.periodic if job.__name__ == name)


def _revisions(pdf: bytes) -> tuple[int, int]:
    """(revisions, signatures) of a PDF as pyHanko reads it."""
    reader = PdfFileReader(io.BytesIO(pdf))
    return reader.xrefs.total_revisions, len(reader.embedded_signatures)


async def test_revision_0_is_typeset_after_the_issue_and_each_signature_adds_one_revision(
    mock_client: httpx.AsyncClient,
    mock_app: Any,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    issued = await create_issued(mock_client, d, "302", ZHANG)
    order_id = issued["order"]["id"]
    sweep = _periodic_job(mock_app, "typeset_issued_orders")
    assert await _stored_pdf(database, order_id) is None  # the issue itself did not wait
    assert await sweep() == 1
    assert await sweep() == 0  # typeset once
    first = await _stored_pdf(database, order_id)
    assert first is not None and first.startswith(b"%PDF")
    revisions, signatures = _revisions(first)
    assert signatures == 0

    async def typeset_again(*_: object) -> bytes:
        raise AssertionError("revision 0 was typeset already")

    monkeypatch.setattr(pdfs_module, "typeset", typeset_again)
    token = await face_verified(mock_client, ZHANG)
    assert (await scan(mock_client, token, issued["scene"])).status_code == 200
    signed, _ = await sign(mock_client, token, order_id, ZHANG.phone)
    assert signed.status_code == 200, signed.text
    after = await _stored_pdf(database, order_id)
    assert after is not None and after.startswith(first)  # an incremental update of it
    assert _revisions(after) == (revisions + 1, 1)


async def test_a_signer_before_the_sweep_typesets_revision_0_outside_the_write_lock(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    issued = await create_issued(mock_client, d, "302", ZHANG)
    order_id = issued["order"]["id"]
    token = await face_verified(mock_client, ZHANG)
    assert (await scan(mock_client, token, issued["scene"])).status_code == 200
    real = pdfs_module.typeset
    written_meanwhile = []

    async def typeset_while_another_writes(*args: Any) -> bytes:
        # Another writer gets in while revision 0 is typeset: nothing holds SQLite's write
        # lock or, on PostgreSQL, the order's row.
        async with database.writer() as other, other.begin():
            locked = select(ContractOrder.id).where(ContractOrder.id == uuid.UUID(order_id))
            await asyncio.wait_for(other.execute(locked.with_for_update(nowait=True)), 5)
        written_meanwhile.append(order_id)
        return await real(*args)

    monkeypatch.setattr(pdfs_module, "typeset", typeset_while_another_writes)
    signed, _ = await sign(mock_client, token, order_id, ZHANG.phone)
    assert signed.status_code == 200, signed.text
    assert written_meanwhile == [order_id]
    pdf = await _stored_pdf(database, order_id)
    assert pdf is not None
    assert _revisions(pdf)[1] == 1


async def test_the_seal_finishes_its_pdf_after_its_commit_outside_the_write_lock(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    real = pdfs_module._finished
    written_meanwhile: list[int] = []

    async def finish_while_another_writes(*args: Any) -> tuple[bytes, str]:
        # While the seal, the platform's stamp and the document time-stamp are signed,
        # another seal could draw the next contract number: nothing holds SQLite's write
        # lock or, on PostgreSQL, the counter's row.
        async with database.writer() as other, other.begin():
            counter = select(ContractCounter.value).where(ContractCounter.name.like("YS%"))
            value = await asyncio.wait_for(other.scalar(counter.with_for_update(nowait=True)), 5)
        assert value is not None
        written_meanwhile.append(value)
        return await real(*args)

    monkeypatch.setattr(pdfs_module, "_finished", finish_while_another_writes)
    contract = await _signed_contract(mock_client, d, clock)
    assert written_meanwhile == [int(contract["number"][-8:])]  # the seal's number committed
    # The seal answered once its PDF was finished: the parties have it at once.
    answer = await mock_client.get(
        f"/api/v1/contracts/{contract['order_id']}/pdf", headers=bearer(contract["zhang"])
    )
    assert answer.status_code == 200, answer.text
    # Two buyers, the seal, the platform's stamp and the document time-stamp.
    assert _revisions(answer.content)[1] == 5


async def test_a_pdf_left_unfinished_at_the_seal_is_finished_by_the_worker_once(
    mock_client: httpx.AsyncClient,
    mock_app: Any,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = await demo(mock_client, session, keys, clock)

    async def authority_unreachable(*_: Any, **__: Any) -> bytes:
        raise TimestampError("the time-stamp authority did not answer")

    # The seal's commit is kept and answered (with the password, shown once), whatever
    # became of the finishing after it.
    with monkeypatch.context() as patched:
        patched.setattr(pdfs_module, "platform_pdf", authority_unreachable)
        contract = await _signed_contract(mock_client, d, clock)
    order_id = contract["order_id"]
    order = (await mock_client.get(f"/api/v1/contracts/{order_id}", headers=bearer(d.agent))).json()
    assert order["status"] == "filing_pending" and order["contract_number"] == contract["number"]
    early = await mock_client.get(f"/api/v1/contracts/{order_id}/pdf", headers=bearer(d.agent))
    assert problem(early) == (409, "pdf_not_ready")
    assert await _event_types(mock_client, d, order_id, "pdf_finished") == 0

    sweep = _periodic_job(mock_app, "finish_left_pdfs")
    # Two finishers at once (two worker nodes): both sign, the first to store it wins.
    assert await asyncio.gather(sweep(), sweep()) == [1, 1]
    assert await sweep() == 0
    assert await _event_types(mock_client, d, order_id, "pdf_finished") == 1
    pdf = (await _as_agent(mock_client, d, order_id, "pdf")).content
    assert _revisions(pdf)[1] == 5
    checked = await mock_client.post(
        "/api/v1/public/verify-pdf", content=pdf, headers={"Content-Type": "application/pdf"}
    )
    assert checked.json()["ours"] and checked.json()["unchanged"], checked.text
    assert checked.json()["contract_number"] == contract["number"]


async def _event_types(client: httpx.AsyncClient, d: Demo, order_id: str, kind: str) -> int:
    events = (await _as_agent(client, d, order_id, "events")).json()["events"]
    return sum(1 for e in events if e["type"] == kind)


async def test_opening_the_document_is_evidence_and_the_bundle_carries_timestamps(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    settings: Settings,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    contract = await _signed_contract(mock_client, d, clock)
    order_id = contract["order_id"]
    events = (await _as_agent(mock_client, d, order_id, "events")).json()["events"]
    types = [e["type"] for e in events]
    # Each buyer opened the document before signing it, and the time is recorded.
    for party in (0, 1):
        opened = types.index(
            "document_opened", *([] if party == 0 else [types.index("signed") + 1])
        )
        assert events[opened]["detail"]["party"] == party
        assert opened < [i for i, t in enumerate(types) if t == "signed"][party]
    finished = next(e for e in events if e["type"] == "pdf_finished")
    assert QR_PATH in finished["detail"]["qr"]

    bundle = (await _as_agent(mock_client, d, order_id, "evidence")).json()
    assert bundle["format"] == "wangqian.evidence-bundle/v2"
    assert [t["signature"] for t in bundle["timestamps"]] == [0, 1, 2]
    root = (settings.data_dir / "keystore" / "root.crt.pem").read_bytes()
    report = verify_bundle(bundle, root)
    assert report.ok, report.to_text()
    assert any(c.name == "timestamps[2].token.trusted" and c.ok for c in report.checks)
    bundle["timestamps"][0]["signature"] = 1  # a token moved onto another signature
    assert not verify_bundle(bundle, root).ok


async def test_the_pdf_is_for_parties_and_staff_once_sealed(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    d = await demo(mock_client, session, keys, clock)
    issued = await create_issued(mock_client, d, "302", ZHANG)
    order_id = issued["order"]["id"]
    zhang = await face_verified(mock_client, ZHANG)
    await scan(mock_client, zhang, issued["scene"])
    early = await mock_client.get(f"/api/v1/contracts/{order_id}/pdf", headers=bearer(zhang))
    assert problem(early) == (409, "pdf_not_ready")
    wrong = await mock_client.post(
        f"/api/v1/contracts/{order_id}/document/opened",
        json={"document_hash": "0" * 64},
        headers=bearer(zhang),
    )
    assert problem(wrong) == (409, "document_changed")
    wang = await face_verified(mock_client, WANG)
    stranger = await mock_client.get(f"/api/v1/contracts/{order_id}/pdf", headers=bearer(wang))
    assert problem(stranger) == (403, "not_a_party")


async def test_verify_pdf_knows_our_pdf_and_refuses_changed_and_foreign_ones(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    d = await demo(mock_client, session, keys, clock)
    contract = await _signed_contract(mock_client, d, clock)
    pdf = (await _as_agent(mock_client, d, contract["order_id"], "pdf")).content

    async def verify(data: bytes, media_type: str = "application/pdf") -> httpx.Response:
        return await mock_client.post(
            "/api/v1/public/verify-pdf", content=data, headers={"Content-Type": media_type}
        )

    genuine = (await verify(pdf)).json()
    assert genuine["ours"] and genuine["unchanged"]
    assert (
        genuine["contract_number"] == contract["number"] and genuine["status"] == "filing_pending"
    )  # sealed, waiting for filing
    assert "signed_at" in genuine and ZHANG.name not in str(genuine)

    # One changed character of the contract's own text: still ours, but not unchanged.
    position = pdf.index(b"/Producer")
    changed = pdf[:position] + b"/Producex" + pdf[position + 9 :]
    answer = (await verify(changed)).json()
    assert answer["ours"] and not answer["unchanged"]
    assert answer["contract_number"] == contract["number"] and answer["problems"]

    appended = (await verify(pdf + b"\n% appended\n")).json()
    assert appended["unchanged"] is False

    foreign = (await verify(_plain_pdf())).json()
    assert foreign == {"ours": False, "unchanged": False, "problems": foreign["problems"]}

    assert problem(await verify(b"not a pdf at all")) == (422, "pdf_invalid")
    assert problem(await verify(pdf, "text/plain")) == (415, "unsupported_media_type")
    too_big = await verify(b"%PDF-1.7\n" + b"0" * (4 * 1024 * 1024 + 10))
    assert too_big.status_code == 413


async def test_the_qr_code_verifies_online_and_a_changed_one_does_not(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    d = await demo(mock_client, session, keys, clock)
    contract = await _signed_contract(mock_client, d, clock)
    events = (await _as_agent(mock_client, d, contract["order_id"], "events")).json()["events"]
    qr = next(e for e in events if e["type"] == "pdf_finished")["detail"]["qr"]
    assert qr.startswith("http://testserver/miniapp/#/qr/") and len(qr) < 400

    good = await mock_client.get("/api/v1/public/verify-qr", params={"code": qr})
    assert good.status_code == 200, good.text
    assert good.json()["genuine"] and good.json()["contract_number"] == contract["number"]
    assert good.json()["status_at_signing"] == "signed"

    head, tail = qr.rsplit(".", 1)
    forged = head + "." + ("A" if tail[0] != "A" else "B") + tail[1:]
    answer = (await mock_client.get("/api/v1/public/verify-qr", params={"code": forged})).json()
    assert answer["genuine"] is False and "contract_number" not in answer

    pem = await mock_client.get("/api/v1/public/certificates")
    assert pem.status_code == 200 and pem.text.count("BEGIN CERTIFICATE") >= 4


def _plain_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "Not a contract")
    return bytes(pdf.output())


async def test_the_platform_tsa_answers_rfc_3161_requests(
    mock_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    data = tmp_path / "data.txt"
    data.write_bytes(b"any document")
    query = (
        await asyncio.to_thread(
            subprocess.run,
            [openssl, "ts", "-query", "-data", str(data), "-sha256", "-cert"],
            capture_output=True,
            check=True,
        )
    ).stdout
    answer = await mock_client.post(
        "/api/v1/public/tsa", content=query, headers={"Content-Type": "application/timestamp-query"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/timestamp-reply"
    (tmp_path / "reply.tsr").write_bytes(answer.content)
    (tmp_path / "query.tsq").write_bytes(query)
    shown = (
        await asyncio.to_thread(
            subprocess.run,
            [openssl, "ts", "-reply", "-in", str(tmp_path / "reply.tsr"), "-text"],
            capture_output=True,
            text=True,
            check=True,
        )
    ).stdout
    assert "Status: Granted." in shown and re.search(r"Policy OID: 2\.25\.\d+\.3", shown)
    refused = await mock_client.post(
        "/api/v1/public/tsa",
        content=b"nonsense",
        headers={"Content-Type": "application/timestamp-query"},
    )
    assert refused.status_code == 200 and b"malformed request" in refused.content
    wrong = await mock_client.post(
        "/api/v1/public/tsa", content=query, headers={"Content-Type": "application/json"}
    )
    assert problem(wrong) == (415, "unsupported_media_type")


async def test_the_typesetter_gives_way_to_requests() -> None:
    """Revision 0 is background work: its process runs at a lower CPU priority than the API
    process whose requests (an agent creating orders on launch day) wait on the same cores."""
    loop = asyncio.get_running_loop()
    niceness = await loop.run_in_executor(pdfs_module.typesetter(), os.nice, 0)
    assert niceness == min(19, os.nice(0) + pdfs_module.TYPESETTER_NICENESS)
    # Ctrl-C, which the terminal sends the whole process group, is its API process's.
    handler = await loop.run_in_executor(pdfs_module.typesetter(), signal.getsignal, signal.SIGINT)
    assert handler == signal.SIG_IGN


def test_a_server_worker_starts_its_typesetter_with_the_face_on_disk(settings: Settings) -> None:
    """``wangqian serve`` cuts the base face before its workers start, and each worker
    starts its typesetter as it starts (``tests/api/test_app.py``): the first contracts
    after a start wait for neither (seconds of CPU each, on launch day the worst moment)."""
    pdfs_module.prepare_typesetting(settings)
    font = pdfs_module.contract_font(settings)
    assert font.cache is not None
    [face] = font.cache.iterdir()
    cut_at = face.stat().st_mtime_ns
    pdfs_module.stop_typesetter()  # a worker that has not typeset anything yet
    assert pdfs_module.start_typesetter(font).result(timeout=60) == face
    assert face.stat().st_mtime_ns == cut_at  # found on disk, not cut again


def _start_a_typesetter_and_leave() -> None:
    pdfs_module._TYPESETTER = None  # the test process's own, copied by the fork: not ours
    pdfs_module.typesetter().submit(os.getpid).result(timeout=60)


def test_a_process_that_leaves_without_its_shutdown_hook_still_exits() -> None:
    """A server worker whose server was killed ends without its shutdown hook: its own
    exit must stop the typesetter it started, not wait for it forever."""
    worker = get_context("fork").Process(target=_start_a_typesetter_and_leave)
    worker.start()
    worker.join(timeout=60)
    alive = worker.is_alive()
    if alive:
        worker.kill()
    assert not alive and worker.exitcode == 0
