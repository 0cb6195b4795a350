"""Releases (limits, one at a time, approve/reject) and refunds, executed by the mock bank
whose confirmation webhooks reach the API in process."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from api.escrow import instructions, reconcile
from api.outbox.models import OutboxMessage
from api.settings import Settings
from tests.api.escrow.helpers import (
    ACCOUNT_NUMBER,
    BUYER,
    FOUNDATION_KEY,
    Escrow,
    pay,
    setup,
    statement,
)
from tests.api.outbox.helpers import recipient

RELEASABLE = 2_000_000 - FOUNDATION_KEY  # a deposit of 2 000 000 fen, at the foundation


async def _release(
    client: httpx.AsyncClient, escrow: Escrow, amount: int, milestone: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/escrow/accounts/{escrow.account_id}/releases",
        headers=escrow.admin,
        json={"amount_fen": amount, "milestone": milestone},
    )


async def _execute(
    client: httpx.AsyncClient, instruction_id: str, kind: str, amount: int
) -> dict[str, Any]:
    answer = await client.post(
        f"/mock/bank/instructions/{instruction_id}/execute",
        json={"kind": kind, "account_number": ACCOUNT_NUMBER, "amount_fen": amount},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_release_limits_review_and_bank_confirmation(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    assert (await pay(mock_client, escrow, clock, "deposit", 2_000_000)).status_code == 200
    clock.advance(timedelta(minutes=1))

    too_much = await _release(mock_client, escrow, 1_600_000, "foundation")
    assert too_much.status_code == 409
    assert too_much.json()["code"] == "release_exceeds_limit"
    assert too_much.json()["releasable_fen"] == RELEASABLE
    assert too_much.json()["key_amount_fen"] == FOUNDATION_KEY
    unknown = await _release(mock_client, escrow, 1, "roof_garden")
    assert unknown.json()["code"] == "milestone_unknown"

    first = await _release(mock_client, escrow, RELEASABLE, "foundation")
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "requested"
    busy = await _release(mock_client, escrow, 1, "foundation")
    assert busy.json()["code"] == "release_in_progress"

    release_id = first.json()["id"]
    no_reason = await mock_client.post(
        f"/api/v1/escrow/releases/{release_id}/reject", headers=escrow.regulator, json={}
    )
    assert no_reason.json()["code"] == "reason_required"
    by_admin = await mock_client.post(
        f"/api/v1/escrow/releases/{release_id}/approve", headers=escrow.admin, json={}
    )
    assert by_admin.status_code == 403
    rejected = await mock_client.post(
        f"/api/v1/escrow/releases/{release_id}/reject",
        headers=escrow.regulator,
        json={"reason": "工程进度未达到基础完成节点"},
    )
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reason"] == "工程进度未达到基础完成节点"
    # A rejected instruction cannot be executed.
    done = await _execute(mock_client, release_id, "release", RELEASABLE)
    assert done["status"] == 409 and done["answer"]["code"] == "bank_instruction_not_open"

    clock.advance(timedelta(minutes=1))
    second = (await _release(mock_client, escrow, RELEASABLE, "foundation")).json()
    approved = await mock_client.post(
        f"/api/v1/escrow/releases/{second['id']}/approve", headers=escrow.regulator, json={}
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    again = await mock_client.post(
        f"/api/v1/escrow/releases/{second['id']}/approve", headers=escrow.regulator, json={}
    )
    assert again.json()["code"] == "release_already_reviewed"
    pending = (await statement(mock_client, escrow))["balances"]
    assert pending["releases_pending_fen"] == RELEASABLE
    assert pending["available_for_release_fen"] == FOUNDATION_KEY

    wrong = await _execute(mock_client, second["id"], "release", 1_400_000)
    assert wrong["status"] == 409 and wrong["answer"]["code"] == "bank_instruction_mismatch"
    executed = await _execute(mock_client, second["id"], "release", RELEASABLE)
    assert executed["status"] == 200, executed
    after = await statement(mock_client, escrow)
    assert after["balances"]["bank_balance_fen"] == FOUNDATION_KEY
    assert after["balances"]["released_fen"] == RELEASABLE
    assert after["balances"]["releases_pending_fen"] == 0
    assert after["balances"]["held_for_contracts_fen"] == 2_000_000
    assert [(e["direction"], e["amount_fen"], e["balance_fen"]) for e in after["entries"]] == [
        ("in", 2_000_000, 2_000_000),
        ("out", RELEASABLE, FOUNDATION_KEY),
    ]
    assert [i["status"] for i in after["instructions"]] == ["rejected", "completed"]
    # Only down to the key amount of the milestone: nothing left at foundation, all of it
    # once the building is complete (key amount 0).
    assert (await _release(mock_client, escrow, 1, "foundation")).status_code == 409
    assert (await _release(mock_client, escrow, FOUNDATION_KEY, "completed")).status_code == 201


async def test_approval_rechecks_the_limit(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    await pay(mock_client, escrow, clock, "deposit", 2_000_000)
    requested = (await _release(mock_client, escrow, 1_500_000, "foundation")).json()
    # The contract is cancelled meanwhile: its money is reserved for the refund.
    refund = await instructions.request_refund(session, contract_id=escrow.contract_id, now=clock.now())
    await session.commit()
    assert refund is not None and refund.amount_fen == 2_000_000
    refused = await mock_client.post(
        f"/api/v1/escrow/releases/{requested['id']}/approve", headers=escrow.regulator, json={}
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "release_exceeds_limit"


async def test_refund_on_cancellation(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    await pay(mock_client, escrow, clock, "deposit", 2_000_000)
    await pay(mock_client, escrow, clock, "down_payment", 10_000_000)
    refund = await instructions.request_refund(session, contract_id=escrow.contract_id, now=clock.now())
    await session.commit()
    assert refund is not None and refund.amount_fen == 12_000_000
    refund_id = str(refund.id)
    assert (
        await instructions.request_refund(session, contract_id=escrow.contract_id, now=clock.now())
        is None
    )
    await session.rollback()  # let go of the SQLite write lock before the webhooks
    reserved = (await statement(mock_client, escrow))["balances"]
    assert reserved["held_for_contracts_fen"] == 0
    assert reserved["refunds_pending_fen"] == 12_000_000
    assert reserved["available_for_release_fen"] == 0

    executed = await _execute(mock_client, refund_id, "refund", 12_000_000)
    assert executed["status"] == 200, executed
    replay = await mock_client.post(f"/mock/bank/events/{executed['transaction_id']}/redeliver")
    assert replay.json()["answer"]["duplicate"] is True
    final = await statement(mock_client, escrow)
    assert final["balances"]["bank_balance_fen"] == 0
    assert final["balances"]["refunds_pending_fen"] == 0
    assert final["instructions"][0]["status"] == "completed"
    sms = list(
        await session.scalars(
            select(OutboxMessage).where(OutboxMessage.template == "refund_completed")
        )
    )
    assert [recipient(keys, m) for m in sms] == [BUYER]
    assert await reconcile.reconcile(session) == []


async def test_release_request_with_idempotency_key_replays(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    mock_settings: Settings,
) -> None:
    escrow = await setup(mock_client, session, keys, clock, mock_settings)
    await pay(mock_client, escrow, clock, "deposit", 2_000_000)
    path = f"/api/v1/escrow/accounts/{escrow.account_id}/releases"
    headers = {**escrow.admin, "Idempotency-Key": "release-1"}
    body = {"amount_fen": 1_000, "milestone": "foundation"}
    first = await mock_client.post(path, headers=headers, json=body)
    second = await mock_client.post(path, headers=headers, json=body)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json() == second.json()
    other = await mock_client.post(path, headers=headers, json={**body, "amount_fen": 2_000})
    assert other.json()["code"] == "idempotency_key_reused"
    instructions = (await statement(mock_client, escrow))["instructions"]
    assert len(instructions) == 1
