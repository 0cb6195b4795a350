"""Outbox rules: enqueue inside the caller's transaction, claim due messages safely across
workers, record what each attempt did."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import DomainError
from api.core.keys import RECIPIENT_PHONE, ServiceKeys
from api.db.engine import insert_into
from api.identity.subscriptions import take_wechat_subscription, wechat_logins
from api.outbox.models import DeliveryAttempt, MessageStatus, OutboxMessage
from api.outbox.schemas import NotificationEntry
from notifications.delivery import Delivered, DeliveryFailedError, Recipient, RetryPolicy
from notifications.templates import TEMPLATES, VariableError, render

PARAMS_FIELD = "outbox.params"
# A person gets at most this many non-urgent messages per window; more wait, none are lost.
RECIPIENT_LIMIT = 5
RECIPIENT_WINDOW = timedelta(minutes=10)


async def enqueue(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    template: str,
    params: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    phone: str | None = None,
    openid: str | None = None,
    company_id: uuid.UUID | None = None,
    contract_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """Queue a message in the caller's transaction; None if this dedupe key was queued before.

    The parameters are rendered once here, so a message that could never be sent is a
    bug found at the point of the change, not at 3 a.m. in the worker. A value the
    providers would refuse is the data's fault, not the change's: the payment or signature
    that sends the message must still happen, so the message is queued all the same and
    the worker, meeting the same refusal, marks it dead with the reason in the delivery
    log (for staff to see and act on) instead of the request failing.
    """
    values = _message_row(
        keys,
        template=template,
        params=params,
        dedupe_key=dedupe_key,
        now=now,
        phone=phone,
        openid=openid,
        company_id=company_id,
        contract_id=contract_id,
    )
    # ON CONFLICT DO NOTHING keeps the caller's transaction intact on a duplicate, which a
    # caught IntegrityError would not on PostgreSQL.
    statement = (
        insert_into(session, OutboxMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxMessage.id)
    )
    return await session.scalar(statement)


def _message_row(
    keys: ServiceKeys,
    *,
    template: str,
    params: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    phone: str | None,
    openid: str | None,
    company_id: uuid.UUID | None,
    contract_id: uuid.UUID | None,
) -> dict[str, Any]:
    with contextlib.suppress(VariableError):
        render(template, params)
    if phone is None and openid is None:
        raise ValueError("a message needs a phone or an openid")
    recipient = keys.protect_phone(phone, field=RECIPIENT_PHONE) if phone else None
    return {
        "id": uuid.uuid4(),
        "dedupe_key": dedupe_key[:255],
        "template": template,
        "params_encrypted": keys.pii.encrypt(
            msgspec.json.encode(params).decode(), field=PARAMS_FIELD
        ),
        "recipient_phone_index": recipient and recipient.index,
        "recipient_phone_encrypted": recipient and recipient.encrypted,
        "recipient_phone_masked": recipient and recipient.masked,
        "recipient_openid": openid,
        "urgent": TEMPLATES[template].urgent,
        "company_id": company_id,
        "contract_id": contract_id,
        "status": MessageStatus.pending,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


async def enqueue_to_person(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    template: str,
    params: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    phone: str,
    company_id: uuid.UUID | None = None,
    contract_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """A message to a buyer or seller: the SMS the city's rules prescribe (it is the record,
    and may carry what WeChat must not, like a contract password) and, when the citizen who
    holds that phone allowed this message in the mini program, the same news as a WeChat
    subscribe message too. Returns the SMS's id (None if queued before)."""
    queued = await enqueue(
        session,
        keys,
        template=template,
        params=params,
        dedupe_key=dedupe_key,
        now=now,
        phone=phone,
        company_id=company_id,
        contract_id=contract_id,
    )
    if queued is None or TEMPLATES[template].wechat is None:
        return queued
    openid = await take_wechat_subscription(
        session, phone_index=keys.phone_index(phone), template=template, now=now
    )
    if openid is not None:
        await enqueue(
            session,
            keys,
            template=template,
            params=params,
            dedupe_key=f"{dedupe_key}:wechat",
            now=now,
            openid=openid,
            company_id=company_id,
            contract_id=contract_id,
        )
    return queued


@dataclass(frozen=True)
class Addressee:
    """A party of a contract to tell something: ``key`` makes their message unique for an
    event (a party id, or a phone's keyed index where that is all that is known; never the
    phone itself, which would sit in clear in the dedupe key)."""

    phone: str
    name: str
    key: str


@dataclass(frozen=True)
class ContractNews:
    """What every message about a contract carries: the flat it names and whose it is."""

    contract_id: uuid.UUID
    company_id: uuid.UUID
    estate: str
    building: str
    room: str


async def enqueue_to_parties(
    session: AsyncSession,
    keys: ServiceKeys,
    news: ContractNews,
    parties: list[Addressee],
    *,
    template: str,
    params: dict[str, Any],
    event_key: str,
    now: datetime,
    by_name: bool = False,
) -> None:
    """One message about a contract to each of its parties (``enqueue_to_person``), at most
    once per ``event_key`` and party. Messages name the flat; ``by_name`` also greets each
    party by name."""
    for message in party_messages(
        news, parties, template=template, params=params, event_key=event_key, by_name=by_name
    ):
        await enqueue_to_person(
            session,
            keys,
            template=message.template,
            params=message.params,
            dedupe_key=message.dedupe_key,
            now=now,
            phone=message.phone,
            company_id=message.company_id,
            contract_id=message.contract_id,
        )


@dataclass(frozen=True)
class PersonMessage:
    """What ``enqueue_to_person`` is given, for queueing many at once."""

    template: str
    params: dict[str, Any]
    dedupe_key: str
    phone: str
    company_id: uuid.UUID | None = None
    contract_id: uuid.UUID | None = None


def party_messages(
    news: ContractNews,
    parties: list[Addressee],
    *,
    template: str,
    params: dict[str, Any],
    event_key: str,
    by_name: bool = False,
) -> list[PersonMessage]:
    return [
        PersonMessage(
            template,
            {
                "estate": news.estate,
                "building": news.building,
                "room": news.room,
                **({"buyer_name": party.name} if by_name else {}),
                **params,
            },
            f"{event_key}:{party.key}",
            party.phone,
            news.company_id,
            news.contract_id,
        )
        for party in parties
    ]


async def enqueue_to_people(
    session: AsyncSession, keys: ServiceKeys, messages: list[PersonMessage], *, now: datetime
) -> None:
    """``enqueue_to_person`` for many messages (a group of bank payments' arrival SMS): the
    SMS in one insert and the WeChat logins among their phones in one query, instead of
    both per message; a WeChat consent used is still one update per message."""
    if not messages:
        return
    rows = [
        _message_row(
            keys,
            template=m.template,
            params=m.params,
            dedupe_key=m.dedupe_key,
            now=now,
            phone=m.phone,
            openid=None,
            company_id=m.company_id,
            contract_id=m.contract_id,
        )
        for m in messages
    ]
    # RETURNING names the messages queued now; a dedupe key queued before returns nothing.
    table = OutboxMessage.__table__
    queued = set(
        await session.scalars(
            insert_into(session, table)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(table.c.id),
            rows,
        )
    )
    followed = [
        m
        for m, row in zip(messages, rows, strict=True)
        if row["id"] in queued and TEMPLATES[m.template].wechat is not None
    ]
    indexes = {m.phone: keys.phone_index(m.phone) for m in followed}
    on_wechat = await wechat_logins(session, set(indexes.values())) if followed else set()
    for m in followed:
        if indexes[m.phone] not in on_wechat:
            continue
        openid = await take_wechat_subscription(
            session, phone_index=indexes[m.phone], template=m.template, now=now
        )
        if openid is not None:
            await enqueue(
                session,
                keys,
                template=m.template,
                params=m.params,
                dedupe_key=f"{m.dedupe_key}:wechat",
                now=now,
                openid=openid,
                company_id=m.company_id,
                contract_id=m.contract_id,
            )


@dataclass(frozen=True)
class ClaimedMessage:
    id: uuid.UUID
    template: str
    params: dict[str, Any]
    recipient: Recipient
    attempt: int
    # Set when an earlier send may have reached the provider: ask before sending again.
    unknown_since: datetime | None = None


async def claim(
    session: AsyncSession,
    keys: ServiceKeys,
    *,
    worker: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    only: list[uuid.UUID] | None = None,
) -> list[ClaimedMessage]:
    """Take up to ``limit`` due messages for ``worker`` until ``now + lease``.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers share the queue without waiting
    on each other; on SQLite the writer transaction already holds the database lock. A
    message whose worker died (lease over) is due again.
    """
    query = (
        select(OutboxMessage)
        .where(
            or_(
                (OutboxMessage.status == MessageStatus.pending)
                & (OutboxMessage.next_attempt_at <= now),
                (OutboxMessage.status == MessageStatus.sending)
                & (OutboxMessage.locked_until <= now),
            )
        )
        .order_by(OutboxMessage.urgent.desc(), OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if only is not None:
        query = query.where(OutboxMessage.id.in_(only))
    claimed: list[ClaimedMessage] = []
    for message in await session.scalars(query):
        if not message.urgent and message.recipient_phone_index:
            wait_until = await _throttled_until(session, message.recipient_phone_index, now)
            if wait_until is not None:
                message.status = MessageStatus.pending
                message.next_attempt_at = wait_until
                message.locked_until = None
                continue
        message.status = MessageStatus.sending
        message.locked_by = worker
        message.locked_until = now + lease
        message.attempts += 1
        # Until an outcome is recorded, this send may have reached the provider: if this
        # worker dies, whoever claims the message next looks it up before sending.
        unknown_since = message.outcome_unknown_since
        message.outcome_unknown_since = unknown_since or now
        assert message.params_encrypted is not None
        claimed.append(
            ClaimedMessage(
                id=message.id,
                template=message.template,
                params=msgspec.json.decode(
                    keys.pii.decrypt(message.params_encrypted, field=PARAMS_FIELD)
                ),
                recipient=Recipient(
                    phone=keys.phone(message.recipient_phone_encrypted, field=RECIPIENT_PHONE)
                    if message.recipient_phone_encrypted
                    else None,
                    openid=message.recipient_openid,
                ),
                attempt=message.attempts,
                unknown_since=unknown_since,
            )
        )
    await session.flush()
    return claimed


async def _throttled_until(
    session: AsyncSession, phone_index: str, now: datetime
) -> datetime | None:
    """When this phone may get its next non-urgent message, or None for "now".

    Counts what was sent in the window and what is in flight, including what this claim
    already took (autoflush makes those rows visible to the count).
    """
    window_start = now - RECIPIENT_WINDOW
    sent_times = list(
        await session.scalars(
            select(OutboxMessage.sent_at)
            .where(
                OutboxMessage.recipient_phone_index == phone_index,
                OutboxMessage.urgent.is_(False),
                OutboxMessage.sent_at > window_start,
            )
            .order_by(OutboxMessage.sent_at)
        )
    )
    in_flight = (
        await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.recipient_phone_index == phone_index,
                OutboxMessage.urgent.is_(False),
                OutboxMessage.status == MessageStatus.sending,
                OutboxMessage.locked_until > now,
            )
        )
        or 0
    )
    total = len(sent_times) + in_flight
    if total < RECIPIENT_LIMIT:
        return None
    over = total - RECIPIENT_LIMIT
    if over < len(sent_times):
        # Due again when enough of the window's messages have left it.
        moment = sent_times[over]
        assert moment is not None
        return moment + RECIPIENT_WINDOW
    return now + RECIPIENT_WINDOW


async def _owned(session: AsyncSession, message_id: uuid.UUID, worker: str) -> OutboxMessage | None:
    """The message if ``worker`` still holds it: a worker whose lease ran out and was
    overtaken must not overwrite the newer worker's outcome."""
    message = await session.get(OutboxMessage, message_id, with_for_update=True)
    if message is None or message.status != MessageStatus.sending or message.locked_by != worker:
        return None
    return message


async def record_sent(
    session: AsyncSession,
    message_id: uuid.UUID,
    delivered: Delivered,
    *,
    worker: str,
    now: datetime,
) -> bool:
    message = await _owned(session, message_id, worker)
    if message is None:
        return False
    message.status = MessageStatus.sent
    message.sent_at = now
    message.channel = delivered.channel
    message.provider_id = delivered.provider_id
    message.note = delivered.note or None
    message.locked_until = None
    message.params_encrypted = None  # nothing secret outlives its delivery
    message.outcome_unknown_since = None
    session.add(
        DeliveryAttempt(
            message_id=message_id,
            attempt=message.attempts,
            worker=worker,
            channel=delivered.channel,
            outcome="sent",
            detail=delivered.note or None,
            at=now,
        )
    )
    await session.flush()
    return True


async def record_failed(
    session: AsyncSession,
    message_id: uuid.UUID,
    failure: DeliveryFailedError,
    *,
    worker: str,
    now: datetime,
    policy: RetryPolicy,
) -> MessageStatus | None:
    message = await _owned(session, message_id, worker)
    if message is None:
        return None
    # A send whose outcome is unknown is not an attempt used up: it waits to be looked up.
    give_up = not failure.retryable or (
        message.attempts >= policy.max_attempts and not failure.unknown
    )
    message.status = MessageStatus.dead if give_up else MessageStatus.pending
    message.locked_until = None
    message.last_error = f"{failure.channel}:{failure.code} {failure.detail}"[:500]
    if not failure.unknown:
        message.outcome_unknown_since = None  # the provider said: it was not sent
    if not give_up:
        message.next_attempt_at = now + policy.delay(message.attempts)
    session.add(
        DeliveryAttempt(
            message_id=message_id,
            attempt=message.attempts,
            worker=worker,
            channel=failure.channel,
            outcome="dead" if give_up else ("unknown" if failure.unknown else "retry"),
            error_code=failure.code[:64],
            detail=failure.detail[:500] or None,
            at=now,
        )
    )
    await session.flush()
    return message.status


async def retry_dead(
    session: AsyncSession,
    message_id: uuid.UUID,
    *,
    by: str,
    now: datetime,
    company_id: uuid.UUID | None = None,
    only_company: bool = False,
) -> OutboxMessage:
    """A person sends a dead message on its way again, with a fresh round of attempts.

    With ``only_company`` the message must belong to ``company_id``: a company's staff
    never touch another company's messages, nor platform messages without a company.
    """
    message = await session.get(OutboxMessage, message_id, with_for_update=True)
    if message is None or (only_company and message.company_id != company_id):
        raise DomainError.not_found("消息")
    if message.status != MessageStatus.dead:
        raise DomainError("message_not_dead", "只有发送失败的消息可以重新发送。")
    if message.params_encrypted is None:
        raise DomainError("message_purged", "该消息内容已清除，无法重新发送。")
    message.status = MessageStatus.pending
    message.attempts = 0
    message.next_attempt_at = now
    session.add(
        DeliveryAttempt(
            message_id=message_id,
            attempt=0,
            worker=by[:64],
            channel="none",
            outcome="manual_retry",
            at=now,
        )
    )
    await session.flush()
    return message


async def list_messages(
    session: AsyncSession,
    *,
    company_id: uuid.UUID | None = None,
    only_company: bool = False,
    contract_id: uuid.UUID | None = None,
    status: MessageStatus | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[OutboxMessage]]:
    query = select(OutboxMessage)
    if only_company:
        query = query.where(OutboxMessage.company_id == company_id)
    if contract_id is not None:
        query = query.where(OutboxMessage.contract_id == contract_id)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id)
        .limit(limit)
        .offset(offset)
    )
    return total, list(rows)


async def contract_log(session: AsyncSession, contract_id: uuid.UUID) -> list[NotificationEntry]:
    """What was sent about one contract, oldest first, for its timeline."""
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.contract_id == contract_id)
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    )
    return [NotificationEntry.of(message) for message in rows]
