"""A million signed contracts on PostgreSQL: do the hot reads cost the same as at 10,000?

Makes a database of its own on the server named by ``--database-url`` (dropped at the end
unless ``--keep``), migrates it, loads the demo world, then grows it in bulk with
``INSERT ... SELECT generate_series`` (the server writes the rows; nothing crosses the
wire per row): for every contract a unit, a buyer (citizen), the signed order with its
number and password, its party, two signatures (buyer, seal), two events and a ledger
account with the deposit transfer. Companies have 1,000 contracts each in 4 buildings of
250 units, so a company's list and a building's table are the same size at any scale:
only the tables around them grow.

At ``--small`` contracts and again at ``--contracts``, it times the reads the public and
the staff make, through the services themselves (uncached: the read cache would hide the
database): public verify, the building table, a citizen's contract list, a company's
contract list; median and p99 over random samples, and the ratio of the two scales
(target: within 1.2×).

Usage: ``python bench/bench_million.py [--contracts 1000000] [--small 10000]
[--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]``.
"""

# The generator's SQL is built from this file's constants alone (row kinds, block sizes);
# every value from outside is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-million-secret-" + "x" * 40  # a throwaway database's, never a deployment's
PASSWORD = "12345678"
PER_COMPANY = 1000
PER_BUILDING = 250
CHUNK = 100_000


def _uuid(kind: str, n: str) -> str:
    """A row id the SQL can compute again from the row's number: md5(kind || n)::uuid."""
    return f"md5('{kind}' || ({n})::text)::uuid"


GROW = [
    # companies, projects and buildings for the new range
    f"""INSERT INTO companies (id, name, uscc, legal_representative, phone, address, created_at)
    SELECT {_uuid("k", "k")}, '基准企业' || k, 'M' || lpad(k::text, 17, '0'), '', '', '', now()
    FROM generate_series(:start / {PER_COMPANY}, (:end - 1) / {PER_COMPANY}) k
    ON CONFLICT DO NOTHING""",
    f"""INSERT INTO projects (id, company_id, name, district, address, created_at)
    SELECT {_uuid("p", "k")}, {_uuid("k", "k")}, '基准项目' || k, '基准区', '', now()
    FROM generate_series(:start / {PER_COMPANY}, (:end - 1) / {PER_COMPANY}) k
    ON CONFLICT DO NOTHING""",
    f"""INSERT INTO buildings (id, project_id, name, survey_no, address, structure,
        floors_above, floors_below, created_at)
    SELECT {_uuid("b", "b")}, {_uuid("p", f"b / {PER_COMPANY // PER_BUILDING}")},
        (b % 4 + 1) || '栋', 'MB' || b, '', '', 25, 0, now()
    FROM generate_series(:start / {PER_BUILDING}, (:end - 1) / {PER_BUILDING}) b
    ON CONFLICT DO NOTHING""",
    f"""INSERT INTO units (id, building_id, room_no, unit_label, nominal_floor, actual_floor,
        floor_span, building_area, inner_area, shared_area, balcony_area, shared_coefficient,
        use, layout, structure, surveyed_at)
    SELECT {_uuid("u", "g")}, {_uuid("b", f"g / {PER_BUILDING}")},
        (g % {PER_BUILDING} / 10 + 1) || lpad((g % 10 + 1)::text, 2, '0'), '1',
        g % {PER_BUILDING} / 10 + 1, g % {PER_BUILDING} / 10 + 1, 1,
        891200, 723000, 168200, 0, '', '住宅', '', '', now()
    FROM generate_series(:start, :end - 1) g""",
    # Phones as the service stores them: a keyed index (here an md5 stand-in of the same
    # width), a token and a mask; these buyers never log in with them.
    f"""INSERT INTO citizens (id, phone_index, phone_encrypted, phone_masked, name,
        identity_level, id_type, created_at)
    SELECT {_uuid("c", "g")}, md5('f' || g) || md5('g' || g), 'bench',
        '190****' || lpad((g % 10000)::text, 4, '0'), '买受人' || g, 'face_verified',
        'resident_id', now()
    FROM generate_series(:start, :end - 1) g""",
    f"""INSERT INTO contract_orders (id, company_id, project_id, building_id, unit_id, kind,
        status, price_fen, payment_method, deposit_fen, down_payment_fen, delivery_date,
        template_id, template_version, terms_json, document_hash, contract_number,
        password_hash, business_number, issued_at, completed_at, end_reason,
        filing_rejection_reason, filing_note, funds_supervised, created_at, updated_at)
    SELECT {_uuid("o", "g")}, {_uuid("k", f"g / {PER_COMPANY}")},
        {_uuid("p", f"g / {PER_COMPANY}")}, {_uuid("b", f"g / {PER_BUILDING}")},
        {_uuid("u", "g")}, 'presale', 'signed', 150000000, 'lump_sum', 5000000, 45000000,
        DATE '2028-06-30', :template_id, :template_version, :terms_json,
        md5('d' || g) || md5('h' || g), 'M' || lpad(g::text, 10, '0'), :password_hash,
        'MB' || lpad(g::text, 10, '0'),
        now() - (:total - g) * interval '1 second', now() - (:total - g) * interval '1 second',
        '', '', '', false,
        now() - (:total - g) * interval '1 second', now() - (:total - g) * interval '1 second'
    FROM generate_series(:start, :end - 1) g""",
    f"""INSERT INTO contract_parties (id, order_id, position, role, name, id_type,
        id_number_encrypted, id_number_index, id_number_masked, phone_encrypted, phone_masked,
        share, citizen_id, signed_at)
    SELECT {_uuid("pa", "g")}, {_uuid("o", "g")}, 0, 'buyer', '买受人' || g, 'resident_id',
        'bench', md5('i' || g) || md5('j' || g), '1101**********0000', 'bench',
        '190****' || lpad((g % 10000)::text, 4, '0'), '', {_uuid("c", "g")}, now()
    FROM generate_series(:start, :end - 1) g""",
    f"""INSERT INTO contract_signatures (id, order_id, signer_key, role, record_json, signed_at)
    SELECT {_uuid("s", "g * 2 + r")}, {_uuid("o", "g")},
        CASE r WHEN 0 THEN ({_uuid("pa", "g")})::text ELSE 'seal' END,
        CASE r WHEN 0 THEN 'buyer' ELSE 'seal' END, '{{}}', now() - (1 - r) * interval '1 minute'
    FROM generate_series(:start, :end - 1) g, generate_series(0, 1) r""",
    f"""INSERT INTO contract_events (id, order_id, seq, event_type, event_json, created_at)
    SELECT {_uuid("e", "g * 2 + r")}, {_uuid("o", "g")}, r,
        CASE r WHEN 0 THEN 'created' ELSE 'sealed' END, '{{}}', now()
    FROM generate_series(:start, :end - 1) g, generate_series(0, 1) r""",
    f"""INSERT INTO escrow_ledger_accounts (id, code, kind, side, guarded, contract_id,
        created_at)
    SELECT {_uuid("l", "g")}, 'bench:contract:' || g, 'contract', 'credit', true,
        {_uuid("o", "g")}, now()
    FROM generate_series(:start, :end - 1) g""",
    f"""INSERT INTO escrow_transfers (id, debit_account_id, credit_account_id, amount_fen,
        kind, note, created_at)
    SELECT {_uuid("t", "g")}, :clearing, {_uuid("l", "g")}, 5000000, 'payment', '', now()
    FROM generate_series(:start, :end - 1) g""",
]


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


async def _grow(url: str, start: int, end: int, total: int, fixed: dict[str, Any]) -> None:
    engine = create_async_engine(url)
    try:
        for low in range(start, end, CHUNK):
            high = min(end, low + CHUNK)
            async with engine.begin() as conn:
                for statement in GROW:
                    await conn.execute(
                        text(statement), {"start": low, "end": high, "total": total, **fixed}
                    )
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            # As autovacuum would in time: statistics, and the visibility map that lets
            # index-only scans skip the table.
            await conn.execute(text("VACUUM ANALYZE"))
    finally:
        await engine.dispose()


async def _fixed(url: str) -> dict[str, Any]:
    """What every generated contract shares with the demo's order: its terms and template,
    and the ledger account the deposits come from."""
    from api.contracts.completion import PASSWORD_PURPOSE
    from api.core.keys import ServiceKeys

    keys = ServiceKeys.from_master(SECRET.encode())
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            order = (
                await conn.execute(
                    text("SELECT template_id, template_version, terms_json FROM contract_orders")
                )
            ).first()
            clearing = await conn.scalar(
                text("SELECT id FROM escrow_ledger_accounts WHERE kind = 'bank_clearing'")
            )
    finally:
        await engine.dispose()
    assert order is not None, "the demo world has no order to copy terms from"
    if clearing is None:
        clearing = uuid.uuid4()
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO escrow_ledger_accounts (id, code, kind, side, guarded, "
                    "created_at) VALUES (:id, 'bench:clearing', 'bank_clearing', 'debit', "
                    "false, now())"
                ),
                {"id": clearing},
            )
        await engine.dispose()
    return {
        "template_id": order.template_id,
        "template_version": order.template_version,
        "terms_json": order.terms_json,
        "password_hash": keys.credential_hash(PASSWORD_PURPOSE, PASSWORD),
        "clearing": clearing,
    }


async def _measure(url: str, size: int, samples: int) -> dict[str, tuple[float, float]]:
    """Median and p99 (ms) of each read over random contracts among the first ``size``."""
    from api.contracts.reads import list_orders
    from api.core.clock import business_date
    from api.core.keys import ServiceKeys
    from api.db.engine import create_database
    from api.identity.models import PrincipalKind, StaffRole
    from api.identity.principal import Principal
    from api.public import buildings, verification
    from api.settings import Settings

    keys = ServiceKeys.from_master(SECRET.encode())
    database = create_database(Settings(database_url=url, secret_key=SECRET))
    now = datetime.now(UTC)
    rng = random.Random(size)

    def oid(kind: str, n: int) -> uuid.UUID:
        import hashlib

        return uuid.UUID(hashlib.md5(f"{kind}{n}".encode()).hexdigest())  # noqa: S324

    async def verify(s: AsyncSession, g: int) -> None:
        answer = await verification.verify_contract(s, keys, number=f"M{g:010d}", password=PASSWORD)
        assert answer.genuine, g

    async def table(s: AsyncSession, g: int) -> None:
        await buildings.building_table(
            s, oid("b", g // PER_BUILDING), today=business_date(now), now=now
        )

    async def citizen_list(s: AsyncSession, g: int) -> None:
        me = Principal(kind=PrincipalKind.citizen, session_id=uuid.uuid4(), citizen_id=oid("c", g))
        assert (await list_orders(s, me, now=now)).total == 1

    async def staff_list(s: AsyncSession, g: int) -> None:
        me = Principal(
            kind=PrincipalKind.staff,
            session_id=uuid.uuid4(),
            staff_id=uuid.uuid4(),
            role=StaffRole.sales_agent,
            company_id=oid("k", g // PER_COMPANY),
        )
        assert (await list_orders(s, me, now=now, limit=20)).total == PER_COMPANY

    reads: dict[str, Callable[[AsyncSession, int], Awaitable[None]]] = {
        "public verify": verify,
        "building table (250 units)": table,
        "citizen's list": citizen_list,
        "staff list (1,000 contracts, page of 20)": staff_list,
    }
    out = {}
    try:
        for name, read in reads.items():
            times = []
            full = size - size % PER_COMPANY  # whole companies only
            for n in range(samples + 5):
                g = rng.randrange(full)
                async with database.reader() as session:
                    started = time.perf_counter()
                    await read(session, g)
                    if n >= 5:  # the first few warm the pool and the plan cache
                        times.append((time.perf_counter() - started) * 1000)
            out[name] = (statistics.median(times), statistics.quantiles(times, n=100)[98])
    finally:
        await database.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contracts", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    name = f"bench_16_million_{secrets.token_hex(3)}"
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(args.database_url, f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
            env.update(WANGQIAN_DATABASE_URL=url, WANGQIAN_SECRET_KEY=SECRET, WANGQIAN_DATA_DIR=tmp)
            subprocess.run(
                [sys.executable, "-m", "api.cli", "demo", "--no-serve"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
        fixed = asyncio.run(_fixed(url))
        figures = {}
        grown = 0
        for size in (args.small, args.contracts):
            started = time.perf_counter()
            asyncio.run(_grow(url, grown, size, args.contracts, fixed))
            print(
                f"{size:,} contracts: {size - grown:,} made in "
                f"{time.perf_counter() - started:.0f} s (with parties, citizens, units, "
                "signatures, events, ledger accounts and transfers; VACUUM ANALYZE)",
                flush=True,
            )
            grown = size
            figures[size] = asyncio.run(_measure(url, size, args.samples))
        small, large = figures[args.small], figures[args.contracts]
        print(
            f"{'read':<42} {f'{args.small:,} p50':>10} {'p99':>7} "
            f"{f'{args.contracts:,} p50':>12} {'p99':>7} {'ratio p50':>9}"
        )
        for read, (p50, p99) in small.items():
            big50, big99 = large[read]
            print(
                f"{read:<42} {p50:8.2f}ms {p99:6.2f} {big50:10.2f}ms {big99:6.2f} "
                f"{big50 / p50:9.2f}"
            )
    finally:
        if not args.keep:
            asyncio.run(_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        else:
            print(f"kept: {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
