"""The outbound instruction channel to the supervising bank's gateway (银企直联 front-end).

An instruction that reaches ``approved`` (a refund on cancellation, a release a regulator
approved) is queued here in the same transaction; the worker pushes it to
``WANGQIAN_BANK_GATEWAY_URL`` as ``POST`` with a JSON body, ``Idempotency-Key: <instruction
id>`` and ``X-Wangqian-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` (the
same scheme as the bank's webhooks, the other way round). The bank answers 200 with
``{"accepted": true, "bank_reference": "..."}``, also for a repeat of an instruction it
already has; the acknowledgement is recorded. Transport errors, timeouts and 5xx are tried
again with backoff (the key makes that safe); any other refusal stops for a person. The
bank confirms the payment itself later with its signed webhook (``bank_events``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.keys import ServiceKeys
from api.db.engine import insert_into
from api.escrow.models import (
    PAYEE_FIELD,
    DeliveryState,
    EscrowContract,
    Instruction,
    InstructionDelivery,
    InstructionKind,
    SupervisedAccount,
)

log = logging.getLogger("wangqian.escrow.gateway")

HEADER = "X-Wangqian-Signature"
MAX_ATTEMPTS = 12
LEASE = timedelta(minutes=5)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff(attempt: int) -> timedelta:
    return min(timedelta(hours=1), timedelta(seconds=30) * 2 ** max(attempt - 1, 0))


class Payee(msgspec.Struct, kw_only=True):
    """Whom a payout pays: the sellers' own account (a resale), in clear for the bank."""

    bank_name: str
    account_name: str
    account_number: str


class InstructionBody(msgspec.Struct, kw_only=True):
    instruction_id: str
    kind: str  # refund | release | payout
    account_number: str
    amount_fen: int
    contract_id: str | None
    milestone: str
    reason: str
    approved_at: str
    payee: Payee | None = None  # a payout's; a refund goes back the way the money came


class _Acknowledgement(msgspec.Struct):
    accepted: bool = False
    bank_reference: str = ""
    code: str = ""


async def queue_instruction(
    session: AsyncSession, instruction_id: uuid.UUID, *, now: datetime
) -> None:
    """Queue an approved instruction for the bank, once (called where it is approved)."""
    await session.execute(
        insert_into(session, InstructionDelivery)
        .values(
            instruction_id=instruction_id,
            status=DeliveryState.pending,
            attempts=0,
            next_attempt_at=now,
            bank_reference="",
            last_error="",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["instruction_id"])
    )


async def withdraw_unsent(session: AsyncSession, instruction_id: uuid.UUID) -> bool:
    """Take back an approved instruction that was never sent to the bank; False when it
    may have reached it (pushed at least once, or pulled), and only the bank can stop it."""
    delivery = await session.get(InstructionDelivery, instruction_id, with_for_update=True)
    if delivery is None:
        return True
    if delivery.status is not DeliveryState.pending or delivery.attempts > 0:
        return False
    delivery.status = DeliveryState.withdrawn
    delivery.last_error = "withdrawn before it was sent"
    return True


async def _payee(
    session: AsyncSession, keys: ServiceKeys, instruction: Instruction
) -> Payee | None:
    if instruction.kind is not InstructionKind.payout or instruction.contract_id is None:
        return None
    contract = await session.get(EscrowContract, instruction.contract_id)
    if contract is None or contract.payee_encrypted is None:
        return None
    raw = keys.pii.decrypt(contract.payee_encrypted, field=PAYEE_FIELD)
    return msgspec.json.decode(raw, type=Payee)


async def _claim(
    session: AsyncSession,
    keys: ServiceKeys,
    now: datetime,
    limit: int,
    *,
    due_only: bool = True,
) -> list[InstructionBody]:
    query = select(InstructionDelivery).where(InstructionDelivery.status == DeliveryState.pending)
    if due_only:
        query = query.where(InstructionDelivery.next_attempt_at <= now).with_for_update(
            skip_locked=True
        )
    rows = await session.scalars(query.order_by(InstructionDelivery.created_at).limit(limit))
    bodies = []
    for delivery in rows:
        # Pushed or pulled, the bank may hold it from now on (see ``withdraw_unsent``).
        delivery.attempts += 1
        if due_only:
            delivery.next_attempt_at = now + LEASE  # another worker leaves it alone meanwhile
        instruction = await session.get(Instruction, delivery.instruction_id)
        assert instruction is not None
        account = await session.get(SupervisedAccount, instruction.supervised_account_id)
        assert account is not None
        bodies.append(
            InstructionBody(
                instruction_id=str(instruction.id),
                kind=instruction.kind.value,
                account_number=account.account_number,
                amount_fen=instruction.amount_fen,
                contract_id=str(instruction.contract_id) if instruction.contract_id else None,
                milestone=instruction.milestone,
                reason=instruction.reason,
                approved_at=(instruction.reviewed_at or now).isoformat(),
                payee=await _payee(session, keys, instruction),
            )
        )
    await session.flush()
    return bodies


async def _push(
    http: httpx.AsyncClient, url: str, secret: str, body: InstructionBody, now: datetime
) -> tuple[str, str]:
    """(outcome, detail): acknowledged (detail: the bank's reference), retry or refused."""
    raw = msgspec.json.encode(body)
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": body.instruction_id,
        HEADER: sign(secret, int(now.timestamp()), raw),
    }
    try:
        response = await http.post(url, content=raw, headers=headers)
    except httpx.HTTPError as exc:
        return "retry", f"transport: {type(exc).__name__}"
    if response.status_code >= 500 or response.status_code == 429:
        return "retry", f"HTTP {response.status_code}"
    try:
        answer = msgspec.json.decode(response.content, type=_Acknowledgement)
    except msgspec.DecodeError:
        answer = _Acknowledgement()
    if response.status_code == 200 and answer.accepted and answer.bank_reference:
        return "acknowledged", answer.bank_reference
    return "refused", f"HTTP {response.status_code} {answer.code or response.text[:200]}"


async def _record(
    session: AsyncSession, instruction_id: str, outcome: str, detail: str, now: datetime
) -> None:
    delivery = await session.get(InstructionDelivery, uuid.UUID(instruction_id))
    assert delivery is not None
    if outcome == "acknowledged":
        delivery.status = DeliveryState.acknowledged
        delivery.bank_reference = detail[:100]
        delivery.acknowledged_at = now
        delivery.last_error = ""
        return
    delivery.last_error = detail[:500]
    if outcome == "refused" or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = DeliveryState.dead
        log.error("bank gateway refused instruction %s: %s", instruction_id, detail)
    else:
        delivery.next_attempt_at = now + backoff(delivery.attempts)


async def push_due(
    database: Any,
    keys: ServiceKeys,
    now: Callable[[], datetime],
    http: httpx.AsyncClient,
    url: str,
    secret: str,
    *,
    limit: int = 20,
) -> int:
    """Push what is due; returns how many the bank acknowledged."""
    async with database.writer() as session, session.begin():
        bodies = await _claim(session, keys, now(), limit)
    outcomes = [await _push(http, url, secret, body, now()) for body in bodies]
    async with database.writer() as session, session.begin():
        for body, (outcome, detail) in zip(bodies, outcomes, strict=True):
            await _record(session, body.instruction_id, outcome, detail, now())
    return sum(1 for outcome, _ in outcomes if outcome == "acknowledged")


def instruction_push(
    database: Any,
    keys: ServiceKeys,
    now: Callable[[], datetime],
    http: httpx.AsyncClient,
    url: str,
    secret: str,
) -> Callable[[], Awaitable[int]]:
    """The periodic job of the worker loop; does nothing where the bank pulls instead."""

    async def push_bank_instructions() -> int:
        if not (url and secret):
            return 0
        return await push_due(database, keys, now, http, url, secret)

    return push_bank_instructions


# ------------------------------------------------------------------ the bank pulls instead


PULL_LIMIT = 100


async def pending_instructions(
    session: AsyncSession, keys: ServiceKeys, *, now: datetime, limit: int = PULL_LIMIT
) -> list[InstructionBody]:
    """For a bank that pulls: the approved instructions it has not acknowledged yet, oldest
    first (the same bodies the push sends)."""
    return await _claim(session, keys, now, limit, due_only=False)


async def acknowledge(
    session: AsyncSession, instruction_id: uuid.UUID, bank_reference: str, *, now: datetime
) -> bool:
    """The bank took an instruction it pulled; False if there is no such pending one."""
    delivery = await session.get(InstructionDelivery, instruction_id, with_for_update=True)
    if delivery is None or delivery.status is DeliveryState.dead:
        return False
    if delivery.status is DeliveryState.pending:
        await _record(session, str(instruction_id), "acknowledged", bank_reference, now)
    return True
