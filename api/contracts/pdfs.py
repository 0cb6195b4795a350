"""The contract PDF in the service, and trusted time.

The PDF is made while the contract is signed (the design is in ``signing.pdf``): revision
0 is typeset from the document frozen at the issue, after the issue and outside any
transaction (the worker's ``first_revision_sweep``, or the first signer who comes before
it: ``prepare_first_revision``), so no signing act holds the write lock while fontTools
subsets a font for seconds; each buyer's act adds the revision that carries their
signature, with the act's own key. Once the seal (or a resale's submission) committed,
the PDF is finished outside any transaction too: the seal's revision, the platform's
verification stamp (QR code with the signed offline payload) and a document time-stamp
(``finish_signed_pdf``; the worker's ``signed_pdf_sweep`` finishes what a crash
interrupted). The file is kept in ``contract_documents`` and served as it was finished;
public ``verify-pdf`` recognises it by its SHA-256.

Every signing act's CMS signature (the evidence bundle's) is also time-stamped (RFC 3161)
by the configured authority, or the platform's own, and kept in ``contract_timestamps``.

Documents frozen before contracts had text (format v1) get time-stamps but no PDF.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from multiprocessing.util import Finalize
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.acts import seal_company
from api.contracts.keystore import Keystore
from api.contracts.models import ContractDocument, ContractOrder, ContractTimestamp, OrderStatus
from api.contracts.queries import SYSTEM_ACTOR, record_event
from api.contracts.terms import DeveloperTerms, terms_of
from api.core.clock import SHANGHAI, Clock
from api.core.errors import DomainError
from api.db.engine import Database, insert_into
from api.outside import tsa_transport
from api.settings import Settings
from signing import offline_qr
from signing.canonical import CanonicalDocument, load_canonical_document
from signing.certificates import Signer
from signing.pdf import Appearance, add_document_timestamp, render_contract
from signing.pdf_fonts import PdfFont, load_font
from signing.pdf_render import field_name, typesetting_face
from signing.pii import mask_name
from signing.seal_image import seal_image, signature_mark
from signing.signatures import (
    SignatureRecord,
    platform_pdf,
    seal_pdf,
    sign_once,
    signing_act,
)
from signing.signing_context import SigningContext
from signing.tsa import TimeStampAuthority, TimestampError, Transport, TransportTimeStamper

log = logging.getLogger("wangqian.contracts.pdfs")


def local_time(moment: datetime) -> str:
    """Times in signature boxes: Beijing time, written in ASCII (standard PDF fonts)."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S (UTC+8)")


def contract_font(settings: Settings) -> PdfFont:
    """The configured font, its base face (``signing.pdf_fonts``) kept under the data
    directory: cut by the first contract typeset there, read by every one after."""
    return load_font(settings.pdf_font).cached_in((settings.data_dir / "cache" / "fonts").resolve())


@dataclass
class ContractPdfs:
    """One per app: the checked font, the keystore, and where trusted time comes from."""

    font: PdfFont
    keystore: Keystore
    clock: Clock
    public_base_url: str
    remote_tsa: Transport | None = None  # the outside TSA, when one is configured
    _stamper: TransportTimeStamper | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings, http: httpx.AsyncClient, clock: Clock) -> ContractPdfs:
        """The keystore under the data directory, opened on first use. Raises
        ``signing.pdf_fonts.FontError`` when the configured font cannot typeset Chinese:
        the service must not start and print empty boxes later."""
        return cls(
            font=contract_font(settings),
            keystore=Keystore.from_settings(settings),
            clock=clock,
            public_base_url=settings.public_base_url,
            remote_tsa=tsa_transport(settings, http),
        )

    async def authority(self, now: datetime) -> TimeStampAuthority:
        """The platform's own time-stamping authority."""
        return TimeStampAuthority.of(await self.keystore.ca_with_tsa(now))

    async def stamper(self, now: datetime) -> TransportTimeStamper:
        if self._stamper is None:
            transport = self.remote_tsa or (await self.authority(now)).transport(self.clock.now)
            self._stamper = TransportTimeStamper(transport)
        return self._stamper

    async def stamp(self, data: bytes, now: datetime) -> bytes:
        with trusted_time_errors():
            return await (await self.stamper(now)).stamp(data)


@contextmanager
def trusted_time_errors() -> Iterator[None]:
    """An authority that cannot be reached or refuses is the caller's retry, not a bug."""
    try:
        yield
    except TimestampError as error:
        raise DomainError(
            "tsa_unavailable", "可信时间戳服务暂时不可用，请稍后重试。", problem=str(error)
        ) from None


_TYPESETTER: ProcessPoolExecutor | None = None


async def typeset(document: CanonicalDocument, font: PdfFont, issued: datetime) -> bytes:
    """Revision 0 of a contract's PDF, typeset in a process of its own (one per API
    process, started on first use). fontTools' font subsetting is pure Python: in a thread
    it held this process's GIL for most of a second per contract, and every request on the
    process waited (py-spy under bench_launch: 64% of the CPU; order creation p99 17 s)."""
    global _TYPESETTER
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(typesetter(), render_contract, document, font, issued)
    except BrokenProcessPool:  # the typesetter died (killed, out of memory): a new one next
        _TYPESETTER = None
        return await asyncio.to_thread(render_contract, document, font, issued)


def typesetter() -> ProcessPoolExecutor:
    """This process's typesetter, started on first use."""
    global _TYPESETTER
    if _TYPESETTER is None:
        # spawn: a fork would copy the running event loop, its threads and connections.
        _TYPESETTER = ProcessPoolExecutor(
            max_workers=1, mp_context=get_context("spawn"), initializer=_in_typesetter
        )
        # Also at exit: a process that exits without its shutdown hook would wait for the
        # typesetter forever (multiprocessing joins a process's children). Multiprocessing
        # runs its finalizers before that join, at an interpreter's exit and at a forked
        # process's (a granian worker's, which runs no atexit functions): this one before
        # those that close multiprocessing's queues (priority 10).
        Finalize(None, stop_typesetter, exitpriority=100)
    return _TYPESETTER


# How much lower the typesetter's scheduling priority is than its API process's.
TYPESETTER_NICENESS = 10


def _in_typesetter() -> None:
    """In the typesetter process as it starts: a lower CPU priority, since revision 0 is
    background work that nobody waits on at once (it is typeset after the issue), while
    the API process's requests are (on launch day, agents creating orders on the same
    cores). And Ctrl-C is its API process's to handle: the terminal signals the whole
    process group, and the typesetter stops when its API process stops it, not with a
    traceback of its own."""
    os.nice(TYPESETTER_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop_typesetter() -> None:
    """At shutdown: contracts still waiting to be typeset are dropped (each is typeset again
    by the next sweep or signer), the one being typeset is finished (a tenth of a second),
    and the typesetter has exited when this returns. Not waiting raced the process's own
    exit, which closes multiprocessing's queues: the typesetter could miss its stop, and
    the process wait for it forever."""
    global _TYPESETTER
    if _TYPESETTER is not None:
        _TYPESETTER.shutdown(wait=True, cancel_futures=True)
        _TYPESETTER = None


def prepare_typesetting(settings: Settings) -> None:
    """Before a server's workers start: the font's base face cut and on disk
    (``signing.pdf_fonts``: seconds of CPU, once per font), rather than by the typesetters
    of the first contracts after a deployment, each cutting its own while buyers wait."""
    typesetting_face(contract_font(settings))


def start_typesetter(font: PdfFont) -> Future[Path | None]:
    """In a server worker as it starts: its typesetter spawned and its face found, so the
    first contract after a start (on launch day, the first of hundreds) does not wait for
    a process to start and import the PDF libraries. Nobody waits on the answer."""
    return typesetter().submit(typesetting_face, font)


def _document(order: ContractOrder) -> CanonicalDocument:
    assert order.document_json is not None
    return load_canonical_document(order.document_json)


async def _stored(session: AsyncSession, order_id: uuid.UUID) -> ContractDocument | None:
    return await session.scalar(
        select(ContractDocument).where(ContractDocument.order_id == order_id)
    )


# Revision 0 being typeset in this process, by order: the sweep and the first signer (or
# two buyers signing at once) wait for the same typesetting instead of making it twice.
_TYPESETTING: dict[uuid.UUID, asyncio.Future[bytes]] = {}


async def _typeset_once(
    order_id: uuid.UUID, document: CanonicalDocument, font: PdfFont, issued: datetime
) -> bytes:
    running = _TYPESETTING.get(order_id)
    if running is None or running.get_loop() is not asyncio.get_running_loop():
        running = asyncio.ensure_future(typeset(document, font, issued))
        _TYPESETTING[order_id] = running

        def forget(done: asyncio.Future[bytes]) -> None:
            if _TYPESETTING.get(order_id) is done:
                del _TYPESETTING[order_id]

        running.add_done_callback(forget)
    # A waiter that goes away (a client that hung up) does not cancel it for the others.
    return await asyncio.shield(running)


async def prepare_first_revision(
    database: Database, font: PdfFont, order_id: uuid.UUID, now: datetime
) -> bool:
    """Revision 0 of an order awaiting signatures, stored before anyone signs: typeset with
    no transaction open (it takes seconds of CPU in the typesetter process), then kept in a
    short transaction of its own. The document was frozen at the issue, so whoever
    typesets it makes the same file; the first to store it wins. True once it is stored;
    False for an order that needs none (not awaiting signatures, or a document without
    text)."""
    async with database.reader() as session:
        order = await session.get(ContractOrder, order_id)
        if (
            order is None
            or order.status is not OrderStatus.awaiting_signatures
            or order.document_json is None
        ):
            return False
        document = _document(order)
        if document.text() is None:
            return False
        if await session.scalar(select(exists().where(ContractDocument.order_id == order_id))):
            return True
        issued = order.issued_at or now
    pdf = await _typeset_once(order_id, document, font, issued)
    async with database.writer() as session, session.begin():
        # Locked, so that an expiry that purges the order's personal data (a resale's) is
        # either before this (nothing is stored) or after it (and removes it).
        status = await session.scalar(
            select(ContractOrder.status).where(ContractOrder.id == order_id).with_for_update()
        )
        if status is not OrderStatus.awaiting_signatures:
            return False
        await session.execute(
            insert_into(session, ContractDocument)
            .values(
                id=uuid.uuid4(),
                order_id=order_id,
                pdf=pdf,
                pdf_sha256=hashlib.sha256(pdf).hexdigest(),
                complete=False,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["order_id"])
        )
    return True


def first_revision_sweep(
    database: Database, font: PdfFont, clock: Clock, *, batch: int = 4
) -> Callable[[], Awaitable[int]]:
    """The periodic job for the worker loop: revision 0 of orders issued since the last
    run, newest first (the likeliest to be signed next; a document frozen before contracts
    had text needs none and is older), one at a time (a signer who comes meanwhile waits
    behind at most one of them in the typesetter). Derived from committed orders only, so
    a crash loses nothing: what was not stored is typeset by the next run, or by the first
    signer."""

    async def typeset_issued_orders() -> int:
        now = clock.now()
        async with database.reader() as session:
            waiting = list(
                await session.scalars(
                    select(ContractOrder.id)
                    .where(
                        ContractOrder.status == OrderStatus.awaiting_signatures,
                        or_(ContractOrder.expires_at.is_(None), ContractOrder.expires_at > now),
                        ~exists().where(ContractDocument.order_id == ContractOrder.id),
                    )
                    .order_by(ContractOrder.issued_at.desc())
                    .limit(batch)
                )
            )
        stored = 0
        for order_id in waiting:
            stored += await prepare_first_revision(database, font, order_id, clock.now())
        return stored

    return typeset_issued_orders


async def _working_copy(session: AsyncSession, order: ContractOrder) -> ContractDocument:
    """The PDF so far. Revision 0 was stored before the signing act's transaction began
    (``prepare_first_revision``): typesetting here would hold the write lock for seconds."""
    row = await _stored(session, order.id)
    if row is None:
        raise RuntimeError(f"revision 0 of order {order.id} was not prepared before signing")
    return row


def _keep(row: ContractDocument, pdf: bytes, now: datetime) -> None:
    row.pdf = pdf
    row.pdf_sha256 = hashlib.sha256(pdf).hexdigest()
    row.updated_at = now


async def stamp_evidence(
    session: AsyncSession,
    pdfs: ContractPdfs,
    order: ContractOrder,
    signer_key: str,
    record: SignatureRecord,
    now: datetime,
) -> None:
    token = await pdfs.stamp(record.signature_der, now)
    session.add(
        ContractTimestamp(
            order_id=order.id,
            signer_key=signer_key,
            token=base64.b64encode(token).decode("ascii"),
            stamped_at=now,
        )
    )


async def sign_party(
    session: AsyncSession,
    pdfs: ContractPdfs,
    order: ContractOrder,
    signer: Signer,
    context: SigningContext,
    *,
    signer_key: str,
    ordinal: int,
    now: datetime,
) -> SignatureRecord:
    """A buyer's or seller's signing act: the evidence signature, and with the same key
    the party's revision of the PDF; both time-stamped. The key ends with the act."""
    ca = await pdfs.keystore.ca(now)
    if _document(order).text() is None:
        record = sign_once(ca, signer, context, now)
    else:
        row = await _working_copy(session, order)
        stamper = await pdfs.stamper(now)
        appearance = Appearance(local_time(now), signature_mark(mask_name(signer.name), pdfs.font))
        with trusted_time_errors(), signing_act(ca, signer, context.order_id, now) as act:
            record = act.sign_context(context)
            pdf = await act.sign_pdf(
                row.pdf,
                field_name=field_name(signer.role.value, ordinal),
                appearance=appearance,
                timestamper=stamper,
            )
        _keep(row, pdf, now)
    await stamp_evidence(session, pdfs, order, signer_key, record, now)
    return record


async def finish_signed_pdf(
    database: Database, pdfs: ContractPdfs, order_id: uuid.UUID, now: datetime
) -> bool:
    """The signed contract's PDF finished: the seal's revision (a new home's developer; a
    resale has none), the platform's stamp with the offline QR code, and a document
    time-stamp over it all, dated when the contract was signed.

    Called once the signing transaction committed, and signed with no transaction open:
    three PDF signatures and their time-stamps are most of a seal's time, and inside the
    signing transaction they held SQLite's single write lock and, on PostgreSQL, the row
    of the city's contract-number counter, so seals across the city took turns. Kept in
    a short transaction if the working copy is still the one it was finished from;
    whoever finishes first wins. What a crash or an unreachable time-stamp authority left
    is finished by the worker's ``signed_pdf_sweep``. True once the finished PDF is
    stored."""
    async with database.reader() as session:
        order = await session.get(ContractOrder, order_id)
        if order is None or order.contract_number is None or order.document_json is None:
            return False
        if _document(order).text() is None:
            return False
        row = await _stored(session, order_id)
        if row is None:
            return False
        if row.complete:
            return True
        assert order.document_hash is not None and order.completed_at is not None
        started_from = row.pdf_sha256
        pdf = row.pdf
        number, signed_at = order.contract_number, order.completed_at
        document_hash, developer = order.document_hash, terms_of(order).developer
    pdf, qr_link = await _finished(pdfs, pdf, developer, number, document_hash, signed_at)
    digest = hashlib.sha256(pdf).hexdigest()
    async with database.writer() as session, session.begin():
        kept = await session.execute(
            update(ContractDocument)
            .where(
                ContractDocument.order_id == order_id,
                ContractDocument.pdf_sha256 == started_from,
                ContractDocument.complete.is_(False),
            )
            .values(pdf=pdf, pdf_sha256=digest, complete=True, updated_at=now)
        )
        if kept.rowcount != 1:  # finished meanwhile (the sweep, another node): nothing else
            return True  # changes a signed contract's working copy
        order = await session.get(ContractOrder, order_id)
        assert order is not None
        await record_event(
            session,
            order,
            "pdf_finished",
            actor=SYSTEM_ACTOR,
            now=now,
            detail={"pdf_sha256": digest, "qr": qr_link},
        )
    return True


async def commit_then_finish_pdf(
    session: AsyncSession,
    database: Database,
    pdfs: ContractPdfs,
    order_id: uuid.UUID,
    now: datetime,
) -> None:
    """The signing act's transaction committed, then the contract's PDF finished with none
    open (``finish_signed_pdf``). The act's answer carries the contract's password, shown
    this once, for a contract that is signed from the commit on: a finishing that fails is
    logged and left to the worker's sweep, not turned into an error for a signed contract."""
    await session.commit()
    try:
        await finish_signed_pdf(database, pdfs, order_id, now)
    except Exception:
        log.exception("the PDF of contract order %s is left for the sweep to finish", order_id)


async def _finished(
    pdfs: ContractPdfs,
    pdf: bytes,
    developer: DeveloperTerms | None,
    number: str,
    document_hash: str,
    signed_at: datetime,
) -> tuple[bytes, str]:
    """The finished file and the link its QR code carries."""
    if developer is None:
        ca = await pdfs.keystore.ca(signed_at)
    else:
        ca = await pdfs.keystore.ca_with_seal(
            seal_company(developer.name, developer.credit_code), signed_at
        )
    stamper = await pdfs.stamper(signed_at)
    token = offline_qr.make_token(
        ca, offline_qr.QrPayload(number, document_hash, OrderStatus.signed.value, signed_at)
    )
    qr_link = offline_qr.qr_text(pdfs.public_base_url, token)
    with trusted_time_errors():
        if developer is not None:
            picture = await asyncio.to_thread(seal_image, developer.name, pdfs.font)
            pdf = await seal_pdf(
                ca,
                developer.credit_code,
                pdf,
                signed_at,
                appearance=Appearance(f"No. {number}\n{local_time(signed_at)}", picture),
                timestamper=stamper,
            )
        pdf = await platform_pdf(
            ca,
            pdf,
            signed_at,
            appearance=Appearance(
                f"No. {number}\n{local_time(signed_at)}\nScan to verify", qr_url=qr_link
            ),
            timestamper=stamper,
        )
        pdf = await add_document_timestamp(pdf, stamper)
    return pdf, qr_link


async def unfinished_contracts(session: AsyncSession, *, limit: int) -> list[uuid.UUID]:
    """Signed contracts whose PDF is not finished, the longest waiting first."""
    rows = await session.scalars(
        select(ContractOrder.id)
        .join(ContractDocument, ContractDocument.order_id == ContractOrder.id)
        .where(~ContractDocument.complete, ContractOrder.contract_number.is_not(None))
        .order_by(ContractOrder.completed_at)
        .limit(limit)
    )
    return list(rows)


def signed_pdf_sweep(
    database: Database, pdfs: ContractPdfs, clock: Clock, *, batch: int = 4
) -> Callable[[], Awaitable[int]]:
    """The periodic job for the worker loop: finishes the PDF of contracts signed whose
    finishing did not end (a crash between the signing's commit and it, or a time-stamp
    authority that was unreachable then), oldest first. Derived from committed rows only."""

    async def finish_left_pdfs() -> int:
        async with database.reader() as session:
            waiting = await unfinished_contracts(session, limit=batch)
        finished = 0
        for order_id in waiting:
            try:
                finished += await finish_signed_pdf(database, pdfs, order_id, clock.now())
            except Exception:  # one contract's failure (logged) does not hold up the others
                log.exception("the PDF of contract order %s could not be finished", order_id)
        return finished

    return finish_left_pdfs


async def timestamps_of(session: AsyncSession, order_id: uuid.UUID) -> dict[str, bytes]:
    """Signer key -> time-stamp token of that signing act."""
    rows = await session.execute(
        select(ContractTimestamp.signer_key, ContractTimestamp.token).where(
            ContractTimestamp.order_id == order_id
        )
    )
    return {key: base64.b64decode(token) for key, token in rows}


async def finished_pdf(session: AsyncSession, order: ContractOrder) -> bytes:
    row = await _stored(session, order.id)
    # Once signed it stays the contract's PDF, whatever filing or a cancellation did since.
    if order.contract_number is None or row is None or not row.complete:
        raise DomainError("pdf_not_ready", "合同尚未签订完成，暂无签署版 PDF。")
    return row.pdf


async def published_certificates(pdfs: ContractPdfs, now: datetime) -> bytes:
    """PEM of the root, every issuing CA, the platform signing and TSA certificates:
    what an offline checker of QR codes and PDFs needs (all public)."""
    ca = await pdfs.keystore.ca_with_tsa(now)
    chain = [ca.root_certificate, *ca.issuing_certificates, ca.platform_certificate]
    if ca.tsa_certificate is not None:
        chain.append(ca.tsa_certificate)
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
