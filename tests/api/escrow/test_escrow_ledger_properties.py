"""Property test of the ledger (hypothesis): random interleavings of payments (exact,
partial, over, unknown references, and late ones into cancelled contracts), replays,
conflicting replays, cancellations with their refunds, and releases, applied through the
service exactly as the webhook and routes apply them. After every step: the sum of all
balances is zero, no guarded account is negative, a replay changed nothing, the supervised
account's balance matches a plain model, a cancelled contract holds nothing (every fen it
got is on its way back), and no release ever takes money reserved for a refund; at the end
``reconcile`` is clean."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from api.core.errors import DomainError
from api.core.keys import ServiceKeys
from api.db.engine import Database, create_database
from api.escrow import (
    accounts,
    bank_events,
    instructions,
    ledger,
    models,
    reconcile,
    schemas,
    statements,
)
from api.escrow.models import BankEvent, LedgerAccount, Side, Transfer
from api.escrow.notices import (
    NoticePayee,
    close_contract,
    create_payment_notices,
    held_for,
    paid_by_notice,
)
from api.identity.models import PrincipalKind, StaffRole
from api.identity.principal import Principal
from api.register import service as register
from api.settings import Settings
from signing.gb_codes import credit_code_check_char
from tests.conftest import START

PG = bool(os.environ.get("WANGQIAN_TEST_DATABASE_URL"))
KEY_AMOUNTS = {"early": 300, "done": 0}
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

amount = st.integers(min_value=1, max_value=1500)
slot = st.integers(min_value=0, max_value=5)  # few bank ids: replays and conflicts happen
operation = st.one_of(
    st.tuples(st.just("pay"), st.integers(0, 3), amount, slot),
    st.tuples(st.just("unknown"), amount, slot),
    st.tuples(st.just("replay"), st.integers(0, 50)),
    st.tuples(st.just("cancel"), st.integers(0, 1)),
    st.tuples(st.just("release"), amount, st.sampled_from(["early", "done"])),
    st.tuples(st.just("review"), st.booleans()),
    st.tuples(st.just("confirm"), st.integers(0, 5)),
    st.tuples(st.just("assign"), st.integers(0, 5), st.integers(0, 3)),
)


@dataclass
class Model:
    bank: int = 0  # what the supervised account should hold
    paid: dict[uuid.UUID, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)  # bodies the API accepted
    suspense: list[tuple[str, int]] = field(default_factory=list)  # (bank txn, amount)
    assigned: set[str] = field(default_factory=set)
    txns: dict[str, bytes] = field(default_factory=dict)
    cancelled: set[uuid.UUID] = field(default_factory=set)


def _uscc() -> str:
    body = "91440101MA5" + "".join(secrets.choice(USCC_ALPHABET) for _ in range(6))
    return body + credit_code_check_char(body)


def _body(kind: str, txn: str, account: str, amount_fen: int, **data: str) -> bytes:
    event = {
        "id": "evt",
        "type": kind,
        "created": 0,
        "data": {
            "transaction_id": txn,
            "account_number": account,
            "amount_fen": amount_fen,
            **data,
        },
    }
    return json.dumps(event, sort_keys=True).encode()


async def _invariants(database: Database) -> dict[uuid.UUID, int]:
    async with database.reader() as session:
        accounts = list(await session.scalars(select(LedgerAccount)))
        nets = await ledger.nets(session, [a.id for a in accounts])
    assert sum(nets.values()) == 0
    for a in accounts:
        own = nets[a.id] if a.side is Side.debit else -nets[a.id]
        assert not (a.guarded and own < 0), (a.code, own)
    return nets


async def _run(
    settings_: Settings, keys: ServiceKeys, ops: list[tuple[Any, ...]]
) -> tuple[int, list[str]]:
    """Apply ``ops``, checking the invariants after every step; returns the final sum of
    all balances and what ``reconcile`` finds."""
    database = create_database(settings_)
    now = START
    try:
        async with database.writer() as s, s.begin():
            company = await register.create_company(s, name="性质测试", uscc=_uscc(), now=now)
            project = await register.create_project(s, company_id=company.id, name="p", now=now)
            admin = Principal(
                kind=PrincipalKind.staff,
                session_id=uuid.uuid4(),
                staff_id=uuid.uuid4(),
                role=StaffRole.company_admin,
                company_id=company.id,
            )
            regulator = Principal(
                kind=PrincipalKind.staff,
                session_id=uuid.uuid4(),
                staff_id=uuid.uuid4(),
                role=StaffRole.regulator,
            )
            number = "62" + "".join(secrets.choice("0123456789") for _ in range(16))
            # Fixed key amounts (an account registered before shares existed): the
            # release limit of KEY_AMOUNTS without a surveyed project behind it.
            account = await accounts.register_approved_account(
                s,
                project_id=project.id,
                company_id=company.id,
                bank_name="b",
                account_name="a",
                account_number=number,
                milestones=[
                    {"code": "early", "name": "基础", "key_amount_fen": KEY_AMOUNTS["early"]},
                    {"code": "done", "name": "竣工", "key_amount_fen": KEY_AMOUNTS["done"]},
                ],
                note="性质测试",
                now=now,
            )
            account_id = account.id
            notices: list[tuple[uuid.UUID, str]] = []
            contracts = [uuid.uuid4(), uuid.uuid4()]
            for contract_id in contracts:
                made = await create_payment_notices(
                    s,
                    keys,
                    contract_id=contract_id,
                    contract_number="YS" + contract_id.hex[:8],
                    project_id=project.id,
                    company_id=company.id,
                    buyers=[NoticePayee(phone="13900000001", name="张三")],
                    deposit_fen=500,
                    down_payment_fen=1000,
                    estate="e",
                    building="b",
                    room="r",
                    now=now,
                )
                notices += [(n.id, n.reference) for n in made]
        model = Model(paid={n: 0 for n, _ in notices})
        prefix = uuid.uuid4().hex[:8]

        async def ingest(body: bytes) -> schemas.WebhookAnswer | None:
            try:
                async with database.writer() as s, s.begin():
                    return await bank_events.ingest_bank_event(s, keys, body=body, now=now)
            except DomainError:
                return None

        for op in ops:
            before = await _invariants(database)
            kind = op[0]
            if kind in ("pay", "unknown"):
                if kind == "pay":
                    notice_id, reference = notices[op[1]]
                    value, txn = op[2], f"{prefix}-{op[3]}"
                else:
                    notice_id, reference = None, "WQUNKNOWN"
                    value, txn = op[1], f"{prefix}-{op[2]}"
                body = _body("payment.received", txn, number, value, reference=reference)
                answer = await ingest(body)
                if (
                    txn in model.txns
                    and json.loads(model.txns[txn])["data"] != json.loads(body)["data"]
                ):
                    assert answer is None  # same bank id, other content: refused
                    assert await _invariants(database) == before
                    continue
                assert answer is not None
                if answer.duplicate:
                    assert await _invariants(database) == before
                    continue
                model.txns[txn] = body
                model.bodies.append(body)
                model.bank += value
                if notice_id is not None:
                    model.paid[notice_id] += value
                else:
                    model.suspense.append((txn, value))
            elif kind == "replay":
                if model.bodies:
                    body = model.bodies[op[1] % len(model.bodies)]
                    answer = await ingest(body)
                    assert answer is not None and answer.duplicate
                    assert await _invariants(database) == before
            elif kind == "cancel":
                async with database.writer() as s, s.begin():
                    await close_contract(s, contracts[op[1]], now=now)
                model.cancelled.add(contracts[op[1]])
            elif kind == "release":
                try:
                    async with database.writer() as s, s.begin():
                        await instructions.request_release(
                            s, admin, account_id, amount_fen=op[1], milestone=op[2], now=now
                        )
                except DomainError as problem:
                    assert problem.code in {"release_exceeds_limit", "release_in_progress"}
            elif kind == "review":
                async with database.reader() as s:
                    pending = [
                        i
                        for i in (
                            await statements.statement(
                                s, await s.get(models.SupervisedAccount, account_id), now=now
                            )
                        ).instructions
                        if i.status == "requested"
                    ]
                for i in pending:
                    try:
                        async with database.writer() as s, s.begin():
                            await instructions.review_release(
                                s, regulator, i.id, approve=op[1], reason="否", now=now
                            )
                    except DomainError as problem:
                        assert problem.code == "release_exceeds_limit"
                        continue
                    if op[1]:
                        # What stays after this release is at least its milestone's key amount.
                        async with database.reader() as s:
                            after = await accounts.figures(s, account_id, now=now)
                        assert after.available_for_release_fen >= KEY_AMOUNTS[i.milestone]
            elif kind == "assign":
                if model.suspense:
                    txn, value = model.suspense[op[1] % len(model.suspense)]
                    notice_id = notices[op[2]][0]
                    async with database.reader() as s:
                        transfer_id = await s.scalar(
                            select(Transfer.id)
                            .join(BankEvent, BankEvent.id == Transfer.bank_event_id)
                            .where(BankEvent.txn_id == txn)
                        )
                    try:
                        async with database.writer() as s, s.begin():
                            await bank_events.assign_suspense(
                                s, keys, transfer_id=transfer_id, notice_id=notice_id, now=now
                            )
                    except DomainError as problem:
                        assert problem.code == "suspense_already_assigned"
                        assert txn in model.assigned
                    else:
                        assert txn not in model.assigned
                        model.assigned.add(txn)
                        model.paid[notice_id] += value
            elif kind == "confirm":
                async with database.reader() as s:
                    statement = await statements.statement(
                        s, await s.get(models.SupervisedAccount, account_id), now=now
                    )
                open_ = [i for i in statement.instructions if i.status == "approved"]
                if open_:
                    i = open_[op[1] % len(open_)]
                    body = _body(
                        f"{i.kind}.completed",
                        f"{prefix}-out-{i.id.hex[:8]}",
                        number,
                        i.amount_fen,
                        instruction_id=str(i.id),
                    )
                    answer = await ingest(body)
                    if i.amount_fen > model.bank:
                        # A refund after a release may find the account short: the ledger
                        # refuses to overdraw it (the bank would not execute it either).
                        assert answer is None
                        assert await _invariants(database) == before
                        continue
                    assert answer is not None and not answer.duplicate
                    model.bodies.append(body)
                    model.bank -= i.amount_fen
                    if i.kind == "release":
                        # No refunded fen reaches the developer: a release never takes
                        # what is reserved for buyers' refunds.
                        async with database.reader() as s:
                            after = await accounts.figures(s, account_id, now=now)
                        assert after.bank_balance_fen >= after.refunds_pending_fen
            await _invariants(database)
            async with database.reader() as s:
                figures = await accounts.figures(s, account_id, now=now)
                assert figures.bank_balance_fen == model.bank
                paid = await paid_by_notice(s, list(model.paid))
                assert paid == model.paid
                for contract_id in model.cancelled:
                    assert await held_for(s, contract_id) == 0
        async with database.reader() as s:
            problems = await reconcile.reconcile(s)
        return sum((await _invariants(database)).values()), problems
    finally:
        await database.dispose()


@settings(
    max_examples=int(os.environ.get("ESCROW_EXAMPLES", 12 if PG else 30)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=25))
@example(
    ops=[
        ("pay", 0, 200, 0),  # partial deposit
        ("pay", 0, 300, 1),  # closes it
        ("pay", 1, 1500, 2),  # over-payment of the down payment
        ("pay", 1, 999, 2),  # same bank id, other amount: refused
        ("unknown", 40, 3),  # suspense
        ("assign", 0, 2),  # matched to contract 2's deposit
        ("assign", 0, 3),  # only once
        ("replay", 0),
        ("release", 1600, "early"),  # too much: key amount 300 must stay
        ("release", 1000, "early"),
        ("review", True),
        ("cancel", 0),  # contract 1 cancelled: 2000 reserved, the approved release yields
        ("confirm", 0),  # the refund executes
        ("pay", 1, 100, 4),  # a late payment into the cancelled contract: refunded too
        ("cancel", 1),
        ("confirm", 0),
        ("confirm", 1),
    ]
)
def test_ledger_invariants_hold(
    settings: Settings, keys: ServiceKeys, ops: list[tuple[Any, ...]]
) -> None:
    total, problems = asyncio.run(_run(settings, keys, ops))
    assert total == 0  # double entry: every fen that left one account entered another
    assert problems == []
