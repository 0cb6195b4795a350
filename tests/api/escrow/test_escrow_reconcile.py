"""The ledger is append-only in the database itself, and ``wangqian reconcile`` finds
what does not add up."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from api import cli
from api.core.clock import MovableClock
from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.escrow import accounts, ledger, reconcile
from api.escrow.models import LedgerKind
from api.escrow.notices import create_payment_notices
from api.identity.models import PrincipalKind, StaffRole
from api.identity.principal import Principal
from api.settings import Settings
from tests.api.escrow.helpers import pay, setup


async def test_transfers_cannot_change_and_reconcile_finds_stray_money(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    await pay(mock_client, escrow, clock, "deposit", 1000)
    for statement in ("UPDATE escrow_transfers SET amount_fen = 1", "DELETE FROM escrow_transfers"):
        async with database.writer() as s:
            with pytest.raises(DBAPIError):
                await s.execute(text(statement))
            await s.rollback()
    async with database.reader() as s:
        assert await reconcile.reconcile(s) == []
        assert "转账 1 笔" in await reconcile.reconcile_summary(s)

    # Money booked without a bank event: both checks notice it.
    async with database.writer() as s, s.begin():
        account_id = uuid.UUID(escrow.account_id)
        supervised = await ledger.ensure_account(
            s, LedgerKind.supervised, supervised_account_id=account_id, now=clock.now()
        )
        suspense = await ledger.ensure_account(
            s, LedgerKind.suspense, supervised_account_id=account_id, now=clock.now()
        )
        await ledger.post(s, [ledger.Posting(supervised, suspense, 5, "payment")], now=clock.now())
    async with database.reader() as s:
        problems = await reconcile.reconcile(s)
    assert any("has no bank event" in p for p in problems)
    assert any("ledger 1005, bank events 1000" in p for p in problems)


async def test_guard_refuses_overdraft(
    session: AsyncSession, database: Database, clock: MovableClock
) -> None:
    async with database.writer() as s, s.begin():
        clearing = await ledger.ensure_account(
            s, LedgerKind.bank_clearing, code=ledger.CLEARING, now=clock.now()
        )
        suspense = await ledger.ensure_account(
            s, LedgerKind.suspense, code=ledger.GLOBAL_SUSPENSE, now=clock.now()
        )
        await ledger.post(s, [ledger.Posting(clearing, suspense, 10, "suspense")], now=clock.now())
    with pytest.raises(DomainError) as refused:
        async with database.writer() as s, s.begin():
            await ledger.post(
                s, [ledger.Posting(suspense, clearing, 11, "correction")], now=clock.now()
            )
    assert refused.value.code == "ledger_guard"
    assert refused.value.extra["shortfall_fen"] == 1
    async with database.reader() as s:
        assert await ledger.balance(s, suspense) == 10
        assert await ledger.balance(s, clearing) == 10


def test_reconcile_command(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if settings.database_url:
        monkeypatch.setenv("WANGQIAN_DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("WANGQIAN_DATABASE_URL", raising=False)
    assert cli.main(["reconcile", "--data-dir", str(settings.data_dir)]) == 0
    assert "对账通过" in capsys.readouterr().out


async def test_the_demo_world_has_one_approved_account_of_each_scope(
    session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    from api.demo import load_demo_world

    world = await load_demo_world(session, keys, now=clock.now())
    ids = {
        "project_id": uuid.UUID(world["project"]["id"]),
        "company_id": uuid.UUID(world["company"]["id"]),
    }
    first = await accounts.approved_account_for_project(session, ids["project_id"])
    city = await accounts.city_resale_account(session)
    await load_demo_world(session, keys, now=clock.now())  # a second load reuses them
    again = await accounts.approved_account_for_project(session, ids["project_id"])
    assert first is not None and again is not None
    assert first.id == again.id and first.status.value == "approved"
    assert city is not None and city == await accounts.city_resale_account(session)
    regulator = Principal(
        kind=PrincipalKind.staff, session_id=uuid.uuid4(), role=StaffRole.regulator
    )
    listed = await accounts.list_accounts(session, regulator)
    assert sorted(a.scope.value for a in listed) == ["project", "resale"]
    notices = await create_payment_notices(
        session,
        keys,
        contract_id=uuid.uuid4(),
        contract_number="YS-DEMO",
        buyers=[],
        deposit_fen=100,
        down_payment_fen=0,
        estate="明湖花园",
        building="1栋",
        room="301",
        now=clock.now(),
        **ids,
    )
    assert [n.kind.value for n in notices] == ["deposit"]
