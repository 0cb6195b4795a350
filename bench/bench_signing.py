"""Signing-core throughput: signing acts and evidence-bundle verifications per second.

- A *signing act* is what one buyer or seller signature costs the server: a fresh P-256
  key, an event certificate issued by the platform CA, and a detached CMS signature over
  the signing context (``signing.signatures.sign_once``). Baseline: a bare ECDSA P-256
  signature over the same context bytes with a ready key.
- A *bundle verification* is ``signing.evidence_verify.verify_bundle`` on a bundle with three
  signatures (buyer, seller, company seal) and 20 audit events. Baselines: a bare SHA-256
  over the bundle's canonical bytes (as asked: the cost of merely reading it), and the 12
  bare ECDSA verifications the check cannot avoid (per CMS: the signature, the signer
  certificate, the issuing CA certificate; three parties plus the platform).

Each figure is the median of several timed rounds, each round running for a fixed time
slice, and every ratio is against a baseline measured in the same run, so figures from
different machines compare by their ratios. Runs in well under a minute.
Usage: ``python bench/bench_signing.py [--rounds 5] [--slice 0.4]``.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signing.ca import create_keystore
from signing.canonical import canonical_document, canonical_json
from signing.certificates import Company, Signer, signer_id_hash
from signing.event_chain import chain_events
from signing.evidence import build_bundle
from signing.evidence_verify import verify_bundle
from signing.signatures import seal_sign, sign_once
from signing.signing_context import SignerRole, SigningContext

ORDER_ID = "ord_bench0000000001"
COMPANY = Company("长沙湘江房地产开发有限公司", "914403001922038216")


def _rate(operation: Callable[[], object], seconds: float, rounds: int) -> float:
    """Median operations per second over ``rounds`` slices of ``seconds`` each."""
    operation()  # warm caches and lazy imports outside the timed slices
    rates = []
    for _ in range(rounds):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            operation()
            count += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        rates.append(count / (now - start))
    return statistics.median(rates)


def _context(signer: Signer, document_hash: str, now: datetime) -> SigningContext:
    return SigningContext(
        document_hash=document_hash,
        order_id=ORDER_ID,
        role=signer.role,
        signer_id_hash=signer.id_hash,
        signing_time=now,
        challenge_id="chl_bench",
        client_ip="203.0.113.7",
        user_agent="Mozilla/5.0 (iPhone) MicroMessenger/8.0.50",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per figure")
    parser.add_argument("--slice", type=float, default=0.4, help="seconds per round")
    arguments = parser.parse_args(argv)
    rounds, seconds = max(1, arguments.rounds), max(0.05, arguments.slice)

    now = datetime.now(UTC).replace(microsecond=0)
    id_key = b"bench-id-hash-key-0123456789abcd"
    buyer = Signer("张三", signer_id_hash("11010519491231002X", id_key), SignerRole.BUYER)
    seller = Signer("李四", signer_id_hash("440106198001011234", id_key), SignerRole.SELLER)
    terms = {
        "unit": {"building": "3栋", "room": "1-2-301", "area_0001m2": 1_234_567},
        "price_fen": 189_000_000,
        "clauses": [f"第{i}条 出卖人与买受人约定的条款内容。" for i in range(1, 41)],
    }
    document = canonical_document("presale-hunan", "2024.2", terms)

    with tempfile.TemporaryDirectory() as directory:
        setup_start = time.perf_counter()
        ca = create_keystore(Path(directory) / "keystore", "bench passphrase", now, "Bench")
        ca.issue_seal_certificate(COMPANY, now)
        setup = time.perf_counter() - setup_start

        buyer_context = _context(buyer, document.document_hash, now)
        context_bytes = buyer_context.canonical_bytes()
        bare_key = ec.generate_private_key(ec.SECP256R1())
        sign_rate = _rate(lambda: sign_once(ca, buyer, buyer_context, now), seconds, rounds)
        bare_sign_rate = _rate(
            lambda: bare_key.sign(context_bytes, ec.ECDSA(hashes.SHA256())), seconds, rounds
        )

        records = [
            sign_once(ca, buyer, buyer_context, now),
            sign_once(ca, seller, _context(seller, document.document_hash, now), now),
        ]
        keeper = signer_id_hash("430102198505050011", id_key)
        seal_context = SigningContext(
            document.document_hash, ORDER_ID, SignerRole.SEAL, keeper, now, "chl_s", "::1", "app"
        )
        records.append(seal_sign(ca, COMPANY.credit_code, seal_context, now))
        events = chain_events(
            ORDER_ID,
            [{"type": f"event_{i}", "at": f"t{i}", "actor": "user"} for i in range(20)],
        )
        bundle = build_bundle(ca, document, ORDER_ID, records, events, now + timedelta(seconds=1))
        root = ca.root_certificate
        report = verify_bundle(bundle, root)
        if not report.ok:
            print(report.to_text())
            return 1
        bundle_bytes = canonical_json(bundle)

        verify_rate = _rate(lambda: verify_bundle(bundle, root), seconds, rounds)
        sha_rate = _rate(lambda: hashlib.sha256(bundle_bytes).digest(), seconds, rounds)
        signature = bare_key.sign(context_bytes, ec.ECDSA(hashes.SHA256()))
        public_key = bare_key.public_key()

        def twelve_verifies() -> None:
            for _ in range(12):
                public_key.verify(signature, context_bytes, ec.ECDSA(hashes.SHA256()))

        ecdsa12_rate = _rate(twelve_verifies, seconds, rounds)

    print(f"signing core benchmark: median of {rounds} rounds x {seconds:.2f} s")
    print(f"  keystore creation (root, issuing CA, platform, seal; scrypt): {setup * 1000:.0f} ms")
    print()
    print(f"  signing acts (event certificate + CMS)   {sign_rate:10.1f} /s")
    print(f"    baseline: bare ECDSA P-256 sign        {bare_sign_rate:10.1f} /s")
    print(f"    ratio to baseline                      {sign_rate / bare_sign_rate:10.3f}")
    print()
    print(
        f"  bundle verifications (3 sig, 20 events)  {verify_rate:10.1f} /s"
        f"   ({len(bundle_bytes)} canonical bytes)"
    )
    print(f"    baseline: bare SHA-256 over the bundle {sha_rate:10.1f} /s")
    print(f"    ratio to baseline                      {verify_rate / sha_rate:10.5f}")
    print(f"    baseline: 12 bare ECDSA verifications  {ecdsa12_rate:10.1f} /s")
    print(f"    ratio to baseline                      {verify_rate / ecdsa12_rate:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
