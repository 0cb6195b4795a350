"""What the signed contract PDF costs, per contract, against the bare signing act.

Library level (one process, the platform's own TSA in process):

- baseline: a bare signing act (``sign_once``: fresh key, event certificate, CMS);
- typesetting revision 0 of a real presale contract (the template's text, ~10 pages of
  A4 with the CJK font subset embedded), as the service does it (from the base face cut
  once into the data directory, ``signing.pdf_fonts``) and from the whole face, and the
  one-off cost of cutting the base face;
- one buyer's act with its PDF revision (CMS + PAdES signature + signature time-stamp);
- finishing (the seal's revision, the platform's QR stamp, the document time-stamp);
- the whole PDF of a two-buyer contract (render + 2 buyers + finishing), and pyHanko
  verifying the finished file.

Route level (the app in process over ASGI, SQLite, mocks): a two-buyer contract is signed
and sealed through the API, then ``POST /api/v1/public/verify-pdf`` with the genuine file
(found by its SHA-256) and with a changed one (every signature validated), against
``GET /healthz`` as the baseline.

Every figure is the median of its runs; ratios are to baselines measured in the same run.
Short on purpose (about a minute on 2 shared cores).
Usage: ``python bench/bench_pdf.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FONT = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"


def _ms(runs: int, work: Callable[[], object]) -> float:
    work()  # warm caches and lazy imports outside the timed runs
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def _ams(runs: int, work: Callable[[], Awaitable[object]]) -> float:
    await work()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _presale_document() -> Any:
    from api.contracts.documents import freeze
    from api.contracts.models import PaymentMethod
    from tests.api.contracts.test_contract_templates import _new_home

    return freeze("gf-2014-0171", _new_home("presale", PaymentMethod.commercial_loan, 50_000_00))


async def _library(runs: int, directory: Path) -> dict[str, float]:
    from signing.pdf import Appearance, render_contract, verify_pdf
    from signing.pdf_fonts import base_face, load_font
    from signing.seal_image import signature_mark
    from signing.signatures import sign_once, signing_act
    from signing.tsa import TimeStampAuthority, TransportTimeStamper
    from tests.signing.helpers import (
        buyer,
        context_for,
        finish,
        finished_pdf,
        new_ca,
        signed_by_parties,
    )

    now = datetime.now(UTC).replace(microsecond=0)
    ca = new_ca(directory / "ca")
    whole = load_font(FONT)
    # As the service typesets: from the base face kept under its data directory.
    font = whole.cached_in(directory / "fonts")
    started = time.perf_counter()
    base_face(font, directory / "fonts")
    cut_ms = (time.perf_counter() - started) * 1000
    document = _presale_document()
    person = buyer()
    context = context_for(person, document.document_hash, now)
    stamper = TransportTimeStamper(TimeStampAuthority.of(ca).transport(lambda: now))
    figures = {"bare signing act": _ms(runs * 5, lambda: sign_once(ca, person, context, now))}
    figures["render revision 0"] = _ms(runs, lambda: render_contract(document, font, now))
    figures["render revision 0 from the whole face"] = _ms(
        runs, lambda: render_contract(document, whole, now)
    )
    figures["cutting the base face (once per font)"] = cut_ms
    base = render_contract(document, font, now)
    mark = Appearance("2026-11-23 10:00:00 (UTC+8)", signature_mark("张*", font))

    async def buyer_act() -> bytes:
        with signing_act(ca, person, "ord_bench", now) as act:
            act.sign_context(context)
            return await act.sign_pdf(
                base, field_name="buyer-1", appearance=mark, timestamper=stamper
            )

    figures["buyer act + PDF revision"] = await _ams(runs, buyer_act)
    signed = await signed_by_parties(ca, document, font, now, base)
    figures["finishing (seal, QR, time-stamp)"] = await _ams(
        runs, lambda: finish(ca, document, font, now, signed)
    )
    whole: list[bytes] = []

    async def whole_pdf() -> None:
        whole[:] = [await finished_pdf(ca, document, font, now)]

    figures["whole PDF, 2 signers"] = await _ams(max(3, runs // 2), whole_pdf)
    pdf = whole[0]
    report = await verify_pdf(pdf, ca.root_certificate, now=now + timedelta(minutes=1))
    assert report.ok, [c for c in report.checks if not c.ok]
    figures["pyHanko verifies the PDF"] = await _ams(
        runs, lambda: verify_pdf(pdf, ca.root_certificate, now=now + timedelta(minutes=1))
    )
    figures["pdf bytes"] = float(len(pdf))
    return figures


async def _routes(runs: int, directory: Path) -> dict[str, float]:
    import httpx
    import msgspec

    from api.app import create_app
    from api.core.clock import MovableClock
    from api.core.keys import ServiceKeys
    from api.db.engine import create_database
    from api.db.migrate import upgrade
    from api.settings import Settings
    from tests.api.contracts.helpers import (
        LI,
        ZHANG,
        create_issued,
        demo,
        face_verified,
        scan,
        seal,
        sign,
    )
    from tests.api.identity.helpers import bearer

    settings = Settings(data_dir=directory, secret_key="bench-" + "x" * 40, log_json=False)
    settings = msgspec.structs.replace(
        settings, mocks_enabled=True, public_base_url="http://bench", log_level="WARNING"
    )
    await asyncio.to_thread(upgrade, settings)
    clock = MovableClock(datetime.now(UTC).replace(microsecond=0))
    database = create_database(settings)
    loopback = httpx.ASGITransport(app=None)  # type: ignore[arg-type]
    app = create_app(settings, clock=clock, database=database, http_transport=loopback)
    loopback.app = app
    keys = ServiceKeys.from_master(settings.master_secret())
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as client,
        database.writer() as session,
    ):
        d = await demo(client, session, keys, clock)
        issued = await create_issued(client, d, "301", ZHANG, LI)
        order_id = issued["order"]["id"]
        for person in (ZHANG, LI):
            token = await face_verified(client, person)
            await scan(client, token, issued["scene"])
            signed, _ = await sign(client, token, order_id, person.phone)
            assert signed.status_code == 200, signed.text
        sealed = await seal(client, d, order_id, clock)
        assert sealed.status_code == 200, sealed.text
        pdf = (
            await client.get(f"/api/v1/contracts/{order_id}/pdf", headers=bearer(d.agent))
        ).content
        changed = pdf.replace(b"/Producer", b"/Producex", 1)

        async def verify(data: bytes) -> None:
            answer = await client.post(
                "/api/v1/public/verify-pdf",
                content=data,
                headers={"Content-Type": "application/pdf", "X-Forwarded-For": "bench"},
            )
            assert answer.status_code == 200, answer.text

        figures = {
            "GET /healthz": await _ams(runs * 5, lambda: client.get("/healthz")),
            "verify-pdf, genuine file": await _ams(runs * 3, lambda: verify(pdf)),
            "verify-pdf, changed file": await _ams(runs, lambda: verify(changed)),
        }
    await database.dispose()
    return figures


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # it narrates every subset
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure")
    runs = max(3, parser.parse_args(argv).runs)
    with tempfile.TemporaryDirectory() as scratch:
        library = asyncio.run(_library(runs, Path(scratch)))
        routes = asyncio.run(_routes(runs, Path(scratch) / "app"))
    bare = library["bare signing act"]
    print(f"contract PDF benchmark: medians of {runs}+ runs (ms); ratios to the baseline")
    print(f"  baseline: bare signing act (key, certificate, CMS)   {bare:9.2f} ms")
    for name in (
        "render revision 0",
        "render revision 0 from the whole face",
        "cutting the base face (once per font)",
        "buyer act + PDF revision",
        "finishing (seal, QR, time-stamp)",
        "whole PDF, 2 signers",
        "pyHanko verifies the PDF",
    ):
        print(f"  {name:<52} {library[name]:9.2f} ms   x{library[name] / bare:8.1f}")
    size = library["pdf bytes"] / 1024
    print(f"  {'finished PDF size':<52} {size:9.1f} KiB")
    health = routes["GET /healthz"]
    print()
    print(f"  baseline: GET /healthz (in process)                  {health:9.2f} ms")
    for name in ("verify-pdf, genuine file", "verify-pdf, changed file"):
        print(f"  {name:<52} {routes[name]:9.2f} ms   x{routes[name] / health:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
