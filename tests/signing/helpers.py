"""Builders shared by the signing tests: a fixed clock, signers, documents, bundles, and
a contract PDF through its whole life."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from signing.ca import PlatformCA, create_keystore
from signing.canonical import CanonicalDocument, canonical_document, sha256_hex
from signing.certificates import Company, Signer, signer_id_hash
from signing.event_chain import chain_events
from signing.evidence import build_bundle
from signing.offline_qr import QrPayload, make_token, qr_text
from signing.pdf import Appearance, add_document_timestamp, render_contract
from signing.pdf_render import field_name
from signing.pii import mask_name
from signing.seal_image import seal_image, signature_mark
from signing.signatures import (
    SignatureRecord,
    platform_pdf,
    seal_pdf,
    seal_sign,
    sign_once,
    signing_act,
)
from signing.signing_context import SignerRole, SigningContext
from signing.tsa import TimeStampAuthority, TransportTimeStamper

# Monday 23 November 2026, 10:00 in Shanghai.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
PASSPHRASE = "test keystore passphrase, never a deployment's"
ID_HASH_KEY = b"test-id-hash-key-" + b"k" * 15
ORDER_ID = "ord_7Gm2kQ9xTbP4"
BUYER_ID_NUMBER = "11010519491231002X"
SELLER_ID_NUMBER = "440106198001011234"
COMPANY = Company("长沙湘江房地产开发有限公司", "914403001922038216")


def new_ca(directory: Path, org_name: str = "Wangqian Test") -> PlatformCA:
    ca = create_keystore(directory, PASSPHRASE, NOW - timedelta(days=30), org_name)
    ca.issue_seal_certificate(COMPANY, NOW - timedelta(days=30))
    return ca


def document() -> CanonicalDocument:
    return canonical_document(
        "presale-hunan",
        "2024.2",
        {
            "unit": {"building": "3栋", "room": "1-2-301", "area_0001m2": 1_234_567},
            "price_fen": 189_000_000,
            "deposit_fen": 5_000_000,
            "buyers": ["张三"],
            "seller": COMPANY.name,
            "parties": [
                {
                    "role": "buyer",
                    "name": "张三",
                    "id_hash": signer_id_hash(BUYER_ID_NUMBER, ID_HASH_KEY),
                },
                {
                    "role": "seller",
                    "name": "李四",
                    "id_hash": signer_id_hash(SELLER_ID_NUMBER, ID_HASH_KEY),
                },
                {"role": "seal", "name": COMPANY.name, "credit_code": COMPANY.credit_code},
            ],
            "clauses": ["出卖人应当于2027年12月31日前交付房屋。", "Delivery by 2027-12-31."],
        },
    )


def buyer() -> Signer:
    return Signer("张三", signer_id_hash(BUYER_ID_NUMBER, ID_HASH_KEY), SignerRole.BUYER)


def seller() -> Signer:
    return Signer("李四", signer_id_hash(SELLER_ID_NUMBER, ID_HASH_KEY), SignerRole.SELLER)


def context_for(
    signer: Signer,
    document_hash: str,
    now: datetime,
    *,
    order_id: str = ORDER_ID,
    challenge_id: str = "chl_1",
) -> SigningContext:
    return SigningContext(
        document_hash=document_hash,
        order_id=order_id,
        role=signer.role,
        signer_id_hash=signer.id_hash,
        signing_time=now,
        challenge_id=challenge_id,
        client_ip="203.0.113.7",
        user_agent="Mozilla/5.0 (iPhone) MicroMessenger/8.0.50",
    )


def seal_context(document_hash: str, now: datetime, order_id: str = ORDER_ID) -> SigningContext:
    keeper = signer_id_hash("430102198505050011", ID_HASH_KEY)
    return SigningContext(
        document_hash, order_id, SignerRole.SEAL, keeper, now, "chl_seal", "198.51.100.2", "app"
    )


def sign_parties(
    ca: PlatformCA, doc: CanonicalDocument, now: datetime = NOW
) -> list[SignatureRecord]:
    """Buyer, seller and company seal, one minute apart."""
    records = []
    for offset, person in enumerate((buyer(), seller())):
        moment = now + timedelta(minutes=offset)
        context = context_for(person, doc.document_hash, moment, challenge_id=f"chl_{offset}")
        records.append(sign_once(ca, person, context, moment))
    moment = now + timedelta(minutes=2)
    records.append(
        seal_sign(ca, COMPANY.credit_code, seal_context(doc.document_hash, moment), moment)
    )
    return records


def event_payloads(count: int = 20) -> list[dict[str, Any]]:
    kinds = ["created", "issued", "scanned", "otp_sent", "signed", "sealed", "filed"]
    return [
        {
            "type": kinds[i % len(kinds)],
            "at": f"2026-11-23T02:{i:02d}:00Z",
            "actor": f"user_{i % 3}",
            "detail": {"attempt": i, "note": "扫码" if i % 2 else "ok"},
        }
        for i in range(count)
    ]


def make_bundle(ca: PlatformCA, now: datetime = NOW, events: int = 20) -> dict[str, Any]:
    doc = document()
    records = sign_parties(ca, doc, now)
    chain = chain_events(ORDER_ID, event_payloads(events))
    return build_bundle(ca, doc, ORDER_ID, records, chain, now + timedelta(minutes=3))


def contract_document(chapters: int = 8) -> CanonicalDocument:
    """A v2 document (the text inside): a buyer, a seller and the company seal."""
    clause = "出卖人应当于2027年12月31日前交付房屋，总价款人民币壹佰捌拾玖万元整（¥1,890,000.00）。"
    text = {
        "title": "商品房买卖合同（预售）",
        "chapters": [
            {"heading": f"第{n}章　测试条款", "clauses": [f"第{n}条　{clause}"] * 4}
            for n in range(1, chapters + 1)
        ],
    }
    terms = document().terms()
    masked = ("1101**********002X", "4401**********1234")  # the buyer's, the seller's
    for party, shown in zip(terms["parties"][:2], masked, strict=True):
        party["id_number_masked"] = shown
    return canonical_document(
        "gf-2014-0171", "2026.1", terms, text=text, template_sha256=sha256_hex(b"template")
    )


async def signed_by_parties(
    ca: PlatformCA, doc: CanonicalDocument, font: Any, now: datetime, pdf: bytes
) -> bytes:
    """Every person the document names signs their revision, one act each."""
    stamper = TransportTimeStamper(TimeStampAuthority.of(ca).transport(lambda: now))
    counts: dict[str, int] = {}
    for party in doc.terms()["parties"]:
        role = party["role"]
        counts[role] = counts.get(role, 0) + 1
        if role == "seal":
            continue
        person = Signer(party["name"], party["id_hash"], SignerRole(role))
        with signing_act(ca, person, ORDER_ID, now) as act:
            act.sign_context(context_for(person, doc.document_hash, now))
            name = mask_name(party["name"])
            mark = Appearance(now.strftime("%Y-%m-%d %H:%M:%S"), signature_mark(name, font))
            pdf = await act.sign_pdf(
                pdf, field_name=field_name(role, counts[role]), appearance=mark, timestamper=stamper
            )
    return pdf


async def finish(
    ca: PlatformCA, doc: CanonicalDocument, font: Any, now: datetime, pdf: bytes
) -> bytes:
    """The seal, the platform's QR stamp and the document time-stamp."""
    stamper = TransportTimeStamper(TimeStampAuthority.of(ca).transport(lambda: now))
    seal = Appearance("No. YS202600000001", seal_image(COMPANY.name, font))
    pdf = await seal_pdf(ca, COMPANY.credit_code, pdf, now, appearance=seal, timestamper=stamper)
    token = make_token(ca, QrPayload("YS202600000001", doc.document_hash, "signed", now))
    stamp = Appearance("No. YS202600000001", qr_url=qr_text("https://wq.example", token))
    pdf = await platform_pdf(ca, pdf, now, appearance=stamp, timestamper=stamper)
    return await add_document_timestamp(pdf, stamper)


async def finished_pdf(ca: PlatformCA, doc: CanonicalDocument, font: Any, now: datetime) -> bytes:
    """The whole life of a contract PDF: typeset, every person's signing act, the seal,
    the platform's QR stamp and the document time-stamp."""
    pdf = await signed_by_parties(ca, doc, font, now, render_contract(doc, font, now))
    return await finish(ca, doc, font, now, pdf)
