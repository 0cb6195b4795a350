"""The hot reads stay index-bound as tables grow (a million contracts: bench/bench_million.py).

The statements that public verify, the building table, a citizen's contract list, a
company's contract list and the worker's look for unfinished PDFs really run are
captured, then EXPLAINed on PostgreSQL with sequential scans disabled: a table of
contracts, parties, signatures, events, documents or units read by a sequential scan
means the index that query needs is gone. PostgreSQL only (SQLite
plans are another matter); it runs in the PostgreSQL pass."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.pdfs import unfinished_contracts
from api.contracts.reads import list_orders
from api.core.clock import MovableClock, business_date
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.identity.models import PrincipalKind, StaffRole
from api.identity.principal import Principal
from api.public import buildings, verification
from tests.api.contracts.helpers import ZHANG, demo, signed_contract
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="query plans are PostgreSQL's: the PostgreSQL pass checks them"
)

# Tables that grow with the contracts: never read whole.
GROWING = (
    "contract_orders",
    "contract_parties",
    "contract_signatures",
    "contract_events",
    "contract_documents",
    "citizens",
    "units",
)


async def _plans(database: Database, run: Callable[[AsyncSession], Awaitable[Any]]) -> list[str]:
    """Each statement ``run`` executes, EXPLAINed with sequential scans off."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        async with database.reader() as session:
            await run(session)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert statements
    plans = []
    async with database.engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        for statement, parameters in statements:
            rows = await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
            plans.append("\n".join(row[0] for row in rows))
    return plans


def _seq_scans(plans: list[str]) -> list[str]:
    return [
        plan for plan in plans if any(f"Seq Scan on {table} " in plan + " " for table in GROWING)
    ]


async def test_hot_reads_use_indexes(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    contract = await signed_contract(mock_client, d, "201", ZHANG)
    order = contract.order
    building = uuid.UUID(d.world["building"]["id"])
    now = clock.now()
    citizen = Principal(
        kind=PrincipalKind.citizen,
        session_id=uuid.uuid4(),
        citizen_id=uuid.UUID(order["parties"][0]["citizen_id"])
        if order["parties"][0].get("citizen_id")
        else uuid.uuid4(),
    )
    staff = Principal(
        kind=PrincipalKind.staff,
        session_id=uuid.uuid4(),
        staff_id=uuid.uuid4(),
        role=StaffRole.sales_agent,
        company_id=uuid.UUID(d.world["company"]["id"]),
    )
    reads: dict[str, Callable[[AsyncSession], Awaitable[Any]]] = {
        "verify": lambda s: verification.verify_contract(
            s, keys, number=contract.number, password=contract.password
        ),
        "building table": lambda s: buildings.building_table(
            s, building, today=business_date(now), now=now
        ),
        "citizen's list": lambda s: list_orders(s, citizen, now=now),
        "staff list": lambda s: list_orders(s, staff, now=now),
        # The worker asks every second which contracts' PDFs a crash left unfinished.
        "unfinished PDFs": lambda s: unfinished_contracts(s, limit=4),
    }
    # And each uses the index that keeps it cheap at a million contracts.
    needs = {
        "verify": ["uq_contract_orders_contract_number", "ix_contract_signatures_order_id"],
        "building table": ["ix_contract_orders_building_status", "ix_units_building_id"],
        "citizen's list": ["ix_contract_parties_citizen_id"],
        "staff list": ["ix_contract_orders_company_created"],
        "unfinished PDFs": ["ix_contract_documents_unfinished"],
    }
    for name, read in reads.items():
        plans = await _plans(database, read)
        scans = _seq_scans(plans)
        assert scans == [], f"{name} reads a growing table whole:\n" + "\n\n".join(scans)
        missing = [index for index in needs[name] if index not in "\n".join(plans)]
        assert missing == [], f"{name} no longer uses {missing}:\n" + "\n\n".join(plans)
