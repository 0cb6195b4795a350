"""Bank webhooks ingested per second, in process (httpx ASGITransport: no sockets), on
SQLite in a temporary directory (or WANGQIAN_DATABASE_URL, which is used as is).

Measures in one run, on the same app:

- baseline: ``GET /healthz`` (routing and middleware, no database);
- ingest: signed ``payment.received`` webhooks, each a new bank transaction for a payment
  notice (signature check, idempotency row, ledger transfer under lock, SMS enqueued);
- replay: the same webhooks again (signature check, then answered as duplicates);
- suspense: payments with unknown references.

Prints medians over rounds and each rate as a ratio of the baseline.
Usage: ``python bench/bench_webhooks.py [--events 300] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app
from api.core.clock import SystemClock
from api.core.keys import ServiceKeys
from api.db.engine import create_database
from api.db.migrate import upgrade
from api.escrow import accounts, schemas, signature
from api.escrow.notices import NoticePayee, create_payment_notices
from api.identity.models import PrincipalKind, StaffRole
from api.identity.principal import Principal
from api.register import service as register
from api.settings import Settings
from signing.gb_codes import credit_code_check_char

SECRET = "bench-bank-secret"
ACCOUNT = "6222020200112233445"


async def arrange(settings: Settings, keys: ServiceKeys) -> str:
    """A company, project, approved supervised account and one contract's notices; returns
    the down payment notice's reference."""
    database = create_database(settings)
    now = SystemClock().now()
    body = "91440101MA5BENCH1".replace("I", "1")
    try:
        async with database.writer() as s, s.begin():
            company = await register.create_company(
                s, name="基准置业", uscc=body + credit_code_check_char(body), now=now
            )
            project = await register.create_project(s, company_id=company.id, name="p", now=now)
            admin = Principal(
                kind=PrincipalKind.staff,
                session_id=uuid.uuid4(),
                staff_id=uuid.uuid4(),
                role=StaffRole.company_admin,
                company_id=company.id,
            )
            account = await accounts.create_supervised_account(
                s,
                admin,
                schemas.NewSupervisedAccount(
                    project_id=project.id,
                    bank_name="b",
                    account_name="a",
                    account_number=ACCOUNT,
                    milestones=[schemas.Milestone(code="done", name="竣工", key_percent=0)],
                ),
                now=now,
            )
            regulator = Principal(
                kind=PrincipalKind.staff,
                session_id=uuid.uuid4(),
                staff_id=uuid.uuid4(),
                role=StaffRole.regulator,
            )
            await accounts.review_account(
                s, regulator, account.id, approve=True, reason="", now=now
            )
            notices = await create_payment_notices(
                s,
                keys,
                contract_id=uuid.uuid4(),
                contract_number="YS-BENCH",
                project_id=project.id,
                company_id=company.id,
                buyers=[NoticePayee(phone="13900000001", name="张三")],
                deposit_fen=0,
                down_payment_fen=10**12,
                estate="明湖花园",
                building="1栋",
                room="301",
                now=now,
            )
            return notices[0].reference
    finally:
        await database.dispose()


def webhook(txn: str, reference: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": "evt_" + txn,
            "type": "payment.received",
            "created": int(time.time()),
            "data": {
                "transaction_id": txn,
                "account_number": ACCOUNT,
                "amount_fen": 100,
                "reference": reference,
            },
        }
    ).encode()
    header = signature.sign_header(SECRET, int(time.time()), body)
    return body, {"content-type": "application/json", signature.HEADER: header}


async def one_round(
    settings: Settings, reference: str, events: int, round_no: int
) -> tuple[float, float, float, float]:
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as client:

        async def rate(requests: list[tuple[str, bytes | None, dict[str, str]]]) -> float:
            started = time.perf_counter()
            for path, body, headers in requests:
                if body is None:
                    response = await client.get(path)
                else:
                    response = await client.post(path, content=body, headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code} {response.text}")
            return len(requests) / (time.perf_counter() - started)

        baseline = await rate([("/healthz", None, {})] * events)
        paid = [webhook(f"R{round_no}-{n}", reference) for n in range(events)]
        ingest = await rate([("/api/v1/webhooks/bank", b, h) for b, h in paid])
        replay = await rate([("/api/v1/webhooks/bank", b, h) for b, h in paid])
        lost = [webhook(f"S{round_no}-{n}", "WQUNKNOWN") for n in range(events)]
        suspense = await rate([("/api/v1/webhooks/bank", b, h) for b, h in lost])
    await app.on_shutdown[0]() if app.on_shutdown else None
    return baseline, ingest, replay, suspense


def main() -> int:
    import logging

    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(
            data_dir=Path(tmp),
            secret_key="bench-master-secret-" + "x" * 32,
            bank_webhook_secrets=SECRET,
            outbox_worker="off",
            log_json=False,
            log_level="WARNING",
        )
        upgrade(settings)
        keys = ServiceKeys.from_master(settings.master_secret())
        reference = asyncio.run(arrange(settings, keys))
        logging.getLogger("wangqian").setLevel(logging.ERROR)
        results = [
            asyncio.run(one_round(settings, reference, args.events, r)) for r in range(args.rounds)
        ]
    baseline, ingest, replay, suspense = (
        statistics.median(column) for column in zip(*results, strict=True)
    )
    database = "PostgreSQL" if settings.database_url.startswith("postgresql") else "SQLite"
    print(f"bank webhooks, {database}, {args.events} events x {args.rounds} rounds (medians)")
    print(f"  baseline: GET /healthz              {baseline:8.0f} /s   1.00x")
    print(f"  ingest (new payment, ledger, SMS)   {ingest:8.0f} /s   {ingest / baseline:4.2f}x")
    print(f"  replay (duplicate answered)         {replay:8.0f} /s   {replay / baseline:4.2f}x")
    print(f"  suspense (unknown reference)        {suspense:8.0f} /s   {suspense / baseline:4.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
