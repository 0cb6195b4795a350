"""Around the bank's webhook: approved instructions pushed to the bank's gateway (signed,
idempotent, retried, acknowledged), pay links whose amount and reference are signed, and
the bank's daily statement file compared with the ledger."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from api.cli import main as wangqian
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.db.engine import Database
from api.escrow import signature
from api.escrow.models import DeliveryState, InstructionDelivery
from api.escrow.statement_import import compare_statement, parse_statement
from api.settings import Settings
from tests.api.escrow.helpers import ACCOUNT_NUMBER, event, pay, setup


async def _approved_release(client: httpx.AsyncClient, escrow: object, amount: int) -> str:
    asked = await client.post(
        f"/api/v1/escrow/accounts/{escrow.account_id}/releases",  # type: ignore[attr-defined]
        headers=escrow.admin,  # type: ignore[attr-defined]
        json={"amount_fen": amount, "milestone": "foundation"},
    )
    assert asked.status_code == 201, asked.text
    release_id = asked.json()["id"]
    approved = await client.post(
        f"/api/v1/escrow/releases/{release_id}/approve",
        headers=escrow.regulator,  # type: ignore[attr-defined]
        json={},
    )
    assert approved.json()["status"] == "approved"
    return release_id


async def _delivery(database: Database, instruction_id: str) -> InstructionDelivery:
    import uuid

    async with database.reader() as session:
        row = await session.get(InstructionDelivery, uuid.UUID(instruction_id))
        assert row is not None
        return row


def _push_job(app: Litestar) -> object:
    return next(j for j in app.state.outbox.periodic if j.__name__ == "push_bank_instructions")


async def test_an_approved_release_reaches_the_banks_gateway_once(
    mock_app: Litestar, mock_client: httpx.AsyncClient, session: AsyncSession,
    keys: ServiceKeys, clock: MovableClock, mock_settings: Settings, database: Database,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    await pay(mock_client, escrow, clock, "deposit", 2_000_000)
    clock.advance(timedelta(minutes=1))
    release_id = await _approved_release(mock_client, escrow, 1_500_000)
    push = _push_job(mock_app)
    await mock_client.post("/mock/bank/gateway/faults", json={"status": 503})
    assert await push() == 0  # type: ignore[operator]
    waiting = await _delivery(database, release_id)
    assert waiting.status is DeliveryState.pending and waiting.last_error == "HTTP 503"
    assert await push() == 0  # type: ignore[operator]  # not due yet
    clock.set(waiting.next_attempt_at)
    assert await push() == 1  # type: ignore[operator]
    acknowledged = await _delivery(database, release_id)
    assert acknowledged.status is DeliveryState.acknowledged
    arrived = (await mock_client.get("/mock/bank/gateway/instructions")).json()[release_id]
    assert acknowledged.bank_reference == arrived["bank_reference"]
    sent = arrived["instruction"]
    assert (sent["kind"], sent["amount_fen"], sent["account_number"]) == (
        "release", 1_500_000, ACCOUNT_NUMBER)
    clock.advance(timedelta(hours=1))
    assert await push() == 0  # type: ignore[operator]  # acknowledged: never pushed again
    # The bank executes it and confirms with its webhook, as before.
    done = await mock_client.post(
        f"/mock/bank/instructions/{release_id}/execute",
        json={"kind": "release", "account_number": ACCOUNT_NUMBER, "amount_fen": 1_500_000},
    )
    assert done.json()["status"] == 200


async def test_the_gateway_refuses_what_is_not_signed_or_conflicts(
    mock_client: httpx.AsyncClient,
) -> None:
    body = b'{"instruction_id": "i-1", "amount_fen": 1}'
    unsigned = await mock_client.post("/mock/bank/gateway", content=body,
                                      headers={"Idempotency-Key": "i-1"})
    assert unsigned.status_code == 401


async def test_a_gateway_that_refuses_for_good_leaves_it_to_a_person(
    mock_app: Litestar, mock_client: httpx.AsyncClient, session: AsyncSession,
    keys: ServiceKeys, clock: MovableClock, mock_settings: Settings, database: Database,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    await pay(mock_client, escrow, clock, "deposit", 2_000_000)
    clock.advance(timedelta(minutes=1))
    release_id = await _approved_release(mock_client, escrow, 1_500_000)
    await mock_client.post("/mock/bank/gateway/faults", json={"status": 400})
    assert await _push_job(mock_app)() == 0  # type: ignore[operator]
    dead = await _delivery(database, release_id)
    assert dead.status is DeliveryState.dead and "400" in dead.last_error


async def test_a_changed_pay_link_is_refused_by_the_bank(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys,
    clock: MovableClock, mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    url = escrow.notices["deposit"]["pay_url"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["sig"] and query["amount_fen"] == str(escrow.notices["deposit"]["due_fen"])
    assert (await mock_client.get(parts.path, params=query)).status_code == 200
    for field, value in (("amount_fen", "1"), ("reference", "WQOTHER"), ("sig", "0" * 64)):
        changed = await mock_client.get(f"{parts.path}?{urlencode({**query, field: value})}")
        assert changed.status_code == 400 and "已被修改" in changed.text, field


STATEMENT_HEADER = "date,transaction_id,account_number,direction,amount,reference\n"


async def test_the_daily_statement_is_compared_with_the_ledger(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys,
    clock: MovableClock, mock_settings: Settings, tmp_path: Path,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    await pay(mock_client, escrow, clock, "deposit", 2_000_000, txn="BK001")
    await pay(mock_client, escrow, clock, "deposit", 5_000, txn="BK002")
    day = clock.now().date().isoformat()  # 10:00 in Shanghai: the same business day
    good = (f"{STATEMENT_HEADER}{day},BK001,{ACCOUNT_NUMBER},credit,20000.00,x\n"
            f"{day},BK002,{ACCOUNT_NUMBER},credit,50.00,x\n")
    lines, problems = parse_statement(("\ufeff" + good).encode())
    assert problems == [] and [line.amount_fen for line in lines] == [2_000_000, 5_000]
    assert await compare_statement(session, lines) == []

    bad = (f"{STATEMENT_HEADER}{day},BK001,{ACCOUNT_NUMBER},credit,20000.01,x\n"
           f"{day},BK009,{ACCOUNT_NUMBER},credit,1.00,x\n"
           f"{day},BK010,{ACCOUNT_NUMBER},sideways,1.00,x\n"
           f"{day},BK011,{ACCOUNT_NUMBER},credit,1.001,x\n")
    lines, problems = parse_statement(bad.encode())
    assert [p[:5] for p in problems] == ["第 4 行", "第 5 行"]
    differences = await compare_statement(session, lines)
    assert any("BK001" in d and "金额" in d for d in differences)
    assert any("BK009" in d and "网签账本没有" in d for d in differences)
    assert any(d.startswith("BK002") and "银行对账文件没有" in d for d in differences)
    assert parse_statement(b"when,what\n")[1][0].startswith("表头应为")

    path = tmp_path / "statement.csv"
    path.write_text(bad, encoding="utf-8")
    argv = ["reconcile", "--statement", str(path), "--data-dir", str(mock_settings.data_dir)]
    if mock_settings.database_url:
        import os

        os.environ["WANGQIAN_DATABASE_URL"] = mock_settings.database_url
    try:
        # The command runs its own event loop: give it a thread of its own.
        assert await asyncio.to_thread(wangqian, argv) == 1
        path.write_text(good, encoding="utf-8")
        assert await asyncio.to_thread(wangqian, argv) == 0
    finally:
        import os

        os.environ.pop("WANGQIAN_DATABASE_URL", None)


def _bank_certificate() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "示范银行 webhook (test)")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM).decode()


async def test_a_webhook_signed_with_the_banks_certificate_is_accepted(
    mock_settings: Settings, clock: MovableClock, database: Database, session: AsyncSession,
    keys: ServiceKeys,
) -> None:
    key, pem = _bank_certificate()
    settings = msgspec.structs.replace(mock_settings, bank_webhook_certificate=pem)
    loopback = httpx.ASGITransport(app=None)  # type: ignore[arg-type]
    app = create_app(settings, clock=clock, database=database, http_transport=loopback)
    loopback.app = app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        escrow = await setup(client, session, keys, clock, settings)
        body = event(amount_fen=1000, reference=escrow.notices["deposit"]["reference"])
        stamp = int(clock.now().timestamp())

        def signed(message: bytes) -> dict[str, str]:
            sig = base64.b64encode(key.sign(message, ec.ECDSA(hashes.SHA256()))).decode()
            return {"content-type": "application/json",
                    signature.CERT_HEADER: f"t={stamp},sig={sig}"}

        good = await client.post("/api/v1/webhooks/bank", content=body,
                                 headers=signed(f"{stamp}.".encode() + body))
        assert good.status_code == 200 and good.json()["outcome"] == "applied"
        forged = await client.post("/api/v1/webhooks/bank", content=body.replace(b"1000", b"9000"),
                                   headers=signed(f"{stamp}.".encode() + body))
        assert forged.status_code == 401 and forged.json()["code"] == "bank_signature_invalid"
        clock.advance(timedelta(minutes=10))
        stale = await client.post("/api/v1/webhooks/bank", content=body,
                                  headers=signed(f"{stamp}.".encode() + body))
        assert stale.json()["code"] == "bank_signature_stale"


async def test_a_bank_may_pull_pending_instructions_instead(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys,
    clock: MovableClock, mock_settings: Settings, database: Database,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    await pay(mock_client, escrow, clock, "deposit", 2_000_000)
    clock.advance(timedelta(minutes=1))
    release_id = await _approved_release(mock_client, escrow, 1_500_000)
    stamp = int(clock.now().timestamp())

    def signed(body: bytes) -> dict[str, str]:
        return {signature.HEADER: signature.sign_header(escrow.secret, stamp, body)}

    unsigned = await mock_client.get("/api/v1/webhooks/bank/instructions")
    assert unsigned.status_code == 401
    listed = await mock_client.get("/api/v1/webhooks/bank/instructions",
                                   headers=signed(b"GET /api/v1/webhooks/bank/instructions"))
    assert listed.status_code == 200, listed.text
    [pending] = listed.json()["items"]
    assert (pending["instruction_id"], pending["amount_fen"]) == (release_id, 1_500_000)
    ack = b'{"bank_reference": "ZL-PULLED-1"}'
    forged = await mock_client.post(f"/api/v1/webhooks/bank/instructions/{release_id}/ack", content=ack,
                                    headers=signed(b'{"bank_reference": "other"}'))
    assert forged.status_code == 401
    taken = await mock_client.post(f"/api/v1/webhooks/bank/instructions/{release_id}/ack", content=ack,
                                   headers=signed(ack))
    assert taken.status_code == 200
    assert (await _delivery(database, release_id)).bank_reference == "ZL-PULLED-1"
    empty = await mock_client.get("/api/v1/webhooks/bank/instructions",
                                  headers=signed(b"GET /api/v1/webhooks/bank/instructions"))
    assert empty.json()["items"] == []


async def _cancelled_with_release(
    app: Litestar, client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys,
    clock: MovableClock, settings: Settings, database: Database, *, pushed: bool,
) -> tuple[str, object]:
    """A paid contract, an approved release (sent to the bank or not), then the contract
    cancelled: its refund reserves all it held. Returns the release and its instruction."""
    import uuid

    from api.escrow.models import Instruction
    from api.escrow.notices import close_contract

    escrow = await setup(client, session, keys, clock, settings)
    await pay(client, escrow, clock, "deposit", 2_000_000)
    clock.advance(timedelta(minutes=1))
    release_id = await _approved_release(client, escrow, 300_000)
    if pushed:
        assert await _push_job(app)() == 1  # type: ignore[operator]
    assert await close_contract(session, escrow.contract_id, now=clock.now()) == 2_000_000
    await session.commit()
    async with database.reader() as reader:
        release = await reader.get(Instruction, uuid.UUID(release_id))
    return release_id, release


async def test_a_refund_withdraws_an_approved_release_the_bank_was_never_sent(
    mock_app: Litestar, mock_client: httpx.AsyncClient, session: AsyncSession,
    keys: ServiceKeys, clock: MovableClock, mock_settings: Settings, database: Database,
) -> None:
    from api.escrow.models import InstructionStatus

    release_id, release = await _cancelled_with_release(
        mock_app, mock_client, session, keys, clock, mock_settings, database, pushed=False
    )
    assert release.status is InstructionStatus.rejected  # type: ignore[attr-defined]
    assert release.reason == "退房退款优先，支取已撤销"  # type: ignore[attr-defined]
    assert (await _delivery(database, release_id)).status is DeliveryState.withdrawn
    assert await _push_job(mock_app)() == 1  # type: ignore[operator]  # the refund alone
    arrived = (await mock_client.get("/mock/bank/gateway/instructions")).json()
    assert [i["instruction"]["kind"] for i in arrived.values()] == ["refund"]


async def test_a_release_the_bank_already_holds_is_not_taken_back_by_a_refund(
    mock_app: Litestar, mock_client: httpx.AsyncClient, session: AsyncSession,
    keys: ServiceKeys, clock: MovableClock, mock_settings: Settings, database: Database,
) -> None:
    from api.escrow.models import InstructionStatus

    release_id, release = await _cancelled_with_release(
        mock_app, mock_client, session, keys, clock, mock_settings, database, pushed=True
    )
    assert release.status is InstructionStatus.approved  # type: ignore[attr-defined]
    assert (await _delivery(database, release_id)).status is DeliveryState.acknowledged
    assert await _push_job(mock_app)() == 1  # type: ignore[operator]  # the refund follows it
    arrived = (await mock_client.get("/mock/bank/gateway/instructions")).json()
    assert sorted(i["instruction"]["kind"] for i in arrived.values()) == ["refund", "release"]
